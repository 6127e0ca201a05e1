// undici's Agent, without the rest of undici. The package's index loads every part of it at
// import (fetch, websockets, caches, mocks, the cookie and MIME parsers), which a proxy that
// only dispatches never runs and which the process would hold in memory for its whole life;
// the Agent module is the one the index exports as `Agent`. undici has no `exports` map, so
// the file can be named; test/gateway/undici-agent.test.ts holds it to be the index's own
// Agent, so an undici release that moves it fails the tests, and here the index is used.
import { createRequire } from 'node:module'
import type { Agent as UndiciAgent } from 'undici'

const require = createRequire(import.meta.url)

function loadAgent (): typeof UndiciAgent {
  try {
    return require('undici/lib/dispatcher/agent.js') as typeof UndiciAgent
  } catch {
    return (require('undici') as typeof import('undici')).Agent
  }
}

export const Agent = loadAgent()
