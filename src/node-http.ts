// node:http, loaded with `require` rather than `import`. Since Node 22 the module has lazy
// `WebSocket`, `CloseEvent` and `MessageEvent` exports backed by Node's bundled copy of
// undici; an ESM `import` of node:http reads every export to build the module's namespace,
// which loads and compiles that whole bundle, kept in memory for the life of the process,
// though corsgate never uses it. `require` reads only the exports named here.
import { createRequire } from 'node:module'

const http = createRequire(import.meta.url)('node:http') as typeof import('node:http')

export const { STATUS_CODES, ServerResponse, createServer, get, request } = http
