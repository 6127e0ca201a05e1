// undici's Agent, without the rest of undici. The package's index loads every part of it at
// import (fetch, websockets, caches, mocks, the cookie and MIME parsers), which a proxy that
// only dispatches never runs and which the process would hold in memory for its whole life;
// the Agent module is the one the index exports as `Agent`. undici has no `exports` map, so
// the file can be named; test/gateway/undici-agent.test.ts holds it to be the index's own
// Agent, so an undici release that moves it fails the tests, and here the index is used.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

/** One of undici's modules by file, or the same export from the index if a release moved it. */
function fromUndici<K extends 'Agent' | 'buildConnector'> (file: string, name: K): typeof import('undici')[K] {
  try {
    return require(`undici/lib/${file}`) as typeof import('undici')[K]
  } catch {
    return (require('undici') as typeof import('undici'))[name]
  }
}

export const Agent = fromUndici('dispatcher/agent.js', 'Agent')
/** undici's connector factory (TLS options, server name). */
export const buildConnector = fromUndici('core/connect.js', 'buildConnector')
