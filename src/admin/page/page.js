// The admin page: reads the admin server's JSON endpoints and shows them. Read-only.
// Every value is put in the DOM with text nodes (never innerHTML): an Origin, a path or a
// rule comes from whoever sent the request, so it must stay inert text.
/* global Node, location */
'use strict'

const LIVE_POLL_MS = 500
const OVERVIEW_POLL_MS = 2000
const LIVE_KEEP = 500

function el (tag, props, ...children) {
  const node = document.createElement(tag)
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue
    if (key === 'class') node.className = value
    else if (key === 'title') node.title = String(value)
    else node.setAttribute(key, String(value))
  }
  for (const child of children) {
    if (child === undefined || child === null) continue
    node.append(child instanceof Node ? child : String(child))
  }
  return node
}

const $ = (id) => document.getElementById(id)

async function getJson (url, init) {
  const res = await fetch(url, { cache: 'no-store', ...init })
  const body = await res.json().catch(() => ({}))
  return { status: res.status, body }
}

function age (iso, now = Date.now()) {
  if (iso === null || iso === undefined) return 'never'
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000))
  if (s < 60) return `${s} s ago`
  if (s < 3600) return `${Math.floor(s / 60)} min ago`
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`
  return `${Math.floor(s / 86400)} d ago`
}

function badge (text, kind) {
  return el('span', { class: `badge ${kind ?? text}` }, text)
}

function showError (message) {
  $('connection').textContent = message
  $('connection').className = message === '' ? 'muted' : 'error'
}

/** Runs a page action; a failed fetch is shown in the header instead of lost. */
function settle (promise) {
  promise.catch((err) => showError(`admin server unreachable (${err.message})`))
}

// ---- tabs ------------------------------------------------------------------------------------

const TABS = ['overview', 'live', 'observed', 'explain']

function showTab () {
  const wanted = location.hash.slice(1)
  const tab = TABS.includes(wanted) ? wanted : 'overview'
  for (const name of TABS) $(name).hidden = name !== tab
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.tab === tab)
  if (tab === 'observed') settle(loadObserved())
}

// ---- overview --------------------------------------------------------------------------------

let known = { policies: [], routes: [] }

function fillSelect (select, values, keepAll) {
  // Left alone when nothing changed, so an open drop-down stays open across refreshes.
  const key = JSON.stringify(values)
  if (select.dataset.values === key) return
  select.dataset.values = key
  const current = select.value
  const options = keepAll ? [el('option', { value: '' }, 'all')] : []
  for (const v of values) options.push(el('option', { value: v }, v))
  select.replaceChildren(...options)
  if (values.includes(current) || (keepAll && current === '')) select.value = current
}

function renderOverview (o) {
  const r = o.readiness
  $('readiness').replaceChildren(
    badge(r.ready ? 'ready' : 'not ready', r.ready ? 'allowed' : 'denied'),
    r.ready ? ' Serving traffic.' : ` ${r.reasons.join('; ')}`,
    el('span', { class: 'muted' }, ` · ${o.openWebsockets} websocket${o.openWebsockets === 1 ? '' : 's'} open`)
  )

  $('policies').tBodies[0].replaceChildren(...o.policies.map((p) => el('tr', { 'data-policy': p.name },
    el('td', {}, p.name), el('td', {}, badge(p.mode, 'mode')),
    el('td', { class: 'num', 'data-count': 'file' }, p.allow.file ?? 0),
    el('td', { class: 'num', 'data-count': 'env' }, p.allow.env ?? 0),
    el('td', { class: 'num', 'data-count': 'redis' }, p.allow.redis ?? 0),
    el('td', { class: 'num', 'data-count': 'expiring' }, p.allow.expiring ?? 0),
    el('td', { class: 'num', 'data-count': 'expired' }, p.expired),
    el('td', { class: 'num', 'data-count': 'deny-file' }, p.deny.file ?? 0),
    el('td', { class: 'num', 'data-count': 'deny-redis' }, p.deny.redis ?? 0)
  )))

  $('reloads').tBodies[0].replaceChildren(...Object.entries(o.reloads).map(([source, x]) => el('tr', { 'data-source': source },
    el('td', {}, source), el('td', {}, badge(x.result, x.result === 'ok' ? 'allowed' : x.result === 'error' ? 'denied' : 'would_deny')),
    el('td', { title: x.at }, age(x.at)), el('td', { class: 'num' }, x.errors), el('td', { title: x.lastOkAt ?? '' }, age(x.lastOkAt))
  )))

  const redis = $('redis')
  if (o.redis === null) {
    redis.replaceChildren(el('dd', { class: 'muted' }, 'Not configured: policies come from the file only.'))
  } else {
    const x = o.redis
    const facts = [
      ['Target', x.target],
      ['Connection', badge(x.connected ? 'connected' : 'disconnected', x.connected ? 'allowed' : 'denied')],
      ['Whitelist', x.state === 'stale' ? el('span', {}, badge('stale', 'denied'), ` since ${age(x.staleSince)}`) : badge('fresh', 'allowed')],
      ['Loaded once', x.loaded ? 'yes' : `no${x.required ? ' (required: not ready until it has)' : ''}`],
      ['Subscribed', x.subscribed ? 'yes' : 'no'],
      ['Keyspace events', x.keyspaceEvents ? 'on' : 'off (polling only)'],
      ['Last load', age(x.lastLoadAt)],
      ['Last error', x.lastError ?? 'none']
    ]
    redis.replaceChildren(...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]))
  }

  $('routes').tBodies[0].replaceChildren(...o.routes.map((route) => el('tr', {},
    el('td', {}, route.route, route.websocket ? el('span', { class: 'muted' }, ' (websocket)') : null),
    el('td', {}, route.policy),
    el('td', {}, el('ul', { class: 'plain' }, ...route.upstreams.map((u) => el('li', {}, u.url, ' ', u.ejected ? badge('ejected', 'denied') : badge('in rotation', 'allowed'),
      el('span', { class: 'muted', title: 'requests sent to it at once at most now (adaptive concurrency), of the route\'s upstreamConnections' }, ` ${u.concurrencyLimit} of ${u.connections} at once`))))),
    el('td', { class: 'num' }, route.openWebsockets)
  )))

  known = { policies: o.policies.map((p) => p.name), routes: o.routes.map((x) => x.route) }
  const filters = $('live-filters')
  fillSelect(filters.elements.policy, known.policies, true)
  fillSelect(filters.elements.route, known.routes, true)
  fillSelect($('observed-filters').elements.policy, known.policies, false)
}

async function refreshOverview () {
  try {
    const { status, body } = await getJson('overview')
    if (status !== 200) return showError(`overview: HTTP ${status}`)
    showError('')
    renderOverview(body)
  } catch (err) {
    showError(`admin server unreachable (${err.message})`)
  }
}

// ---- live decisions --------------------------------------------------------------------------

const live = { after: 0, rows: [], paused: false }

function liveFilter () {
  const f = $('live-filters').elements
  const origin = f.origin.value.trim()
  return (d) => (f.policy.value === '' || d.policy === f.policy.value) &&
    (f.route.value === '' || d.route === f.route.value) &&
    (f.outcome.value === '' || d.outcome === f.outcome.value) &&
    (origin === '' || (d.origin ?? '(none)').includes(origin))
}

function decisionRow (d) {
  const detail = d.detail === null ? null : `${d.reason === 'method_not_allowed' ? 'method' : 'header'} ${d.detail}`
  const rule = [d.rule === null ? null : `rule ${d.rule}`, detail].filter((x) => x !== null).join(' · ')
  return el('tr', { 'data-seq': d.seq, class: d.outcome },
    el('td', { title: d.at }, d.at.slice(11, 23)),
    el('td', {}, badge(d.outcome)),
    el('td', {}, d.kind),
    el('td', {}, d.method),
    el('td', {}, d.route),
    el('td', {}, d.policy),
    el('td', { class: 'origin' }, d.origin === null ? el('span', { class: 'muted' }, '(no Origin)') : d.origin),
    el('td', { class: 'path' }, d.path),
    el('td', { class: 'num' }, d.status),
    el('td', { class: 'reason' }, d.reason),
    el('td', { class: 'rule' }, rule),
    el('td', { class: 'num' }, d.durationMs)
  )
}

function renderLive () {
  const keep = liveFilter()
  const shown = live.rows.filter(keep).reverse()
  $('decisions').tBodies[0].replaceChildren(...shown.map(decisionRow))
  $('live-count').textContent = `${shown.length} of the last ${live.rows.length} requests${live.paused ? ' · paused' : ''}`
}

async function pollLive () {
  if (!live.paused) {
    try {
      const { status, body } = await getJson(`decisions?after=${live.after}`)
      if (status === 200 && body.decisions.length > 0) {
        live.after = body.last
        live.rows.push(...body.decisions)
        if (live.rows.length > LIVE_KEEP) live.rows.splice(0, live.rows.length - LIVE_KEEP)
        renderLive()
      } else if (status === 200 && body.last < live.after) {
        // The gateway restarted: its numbering starts again.
        live.after = 0
      }
    } catch (err) {
      showError(`admin server unreachable (${err.message})`)
    }
  }
  setTimeout(pollLive, LIVE_POLL_MS)
}

// ---- observed origins ------------------------------------------------------------------------

function outcomeList (counts) {
  return el('span', {}, ...Object.entries(counts).filter(([, n]) => n > 0).map(([k, n]) => el('span', { class: `pair ${k}` }, `${k} ${n}`)))
}

async function loadObserved () {
  const f = $('observed-filters').elements
  const policy = f.policy.value
  if (policy === '') return
  const { status, body } = await getJson(`observed?policy=${encodeURIComponent(policy)}&since=${encodeURIComponent(f.since.value)}`)
  const tbody = $('observed-origins').tBodies[0]
  if (status !== 200) {
    tbody.replaceChildren()
    $('observed-summary').textContent = ''
    $('observed-message').textContent = body.message ?? `HTTP ${status}`
    return
  }
  $('observed-message').textContent = body.origins.length === 0 ? 'No requests observed in this window.' : ''
  $('observed-summary').textContent = `${body.origins.length} origins · ${body.other} requests past the row limit · ${body.invalid} with an invalid Origin`
  tbody.replaceChildren(...body.origins.map((o) => {
    const refused = (o.outcomes.denied ?? 0) + (o.outcomes.would_deny ?? 0)
    return el('tr', { class: refused > 0 ? 'refused' : null },
      el('td', { class: 'origin' }, o.origin === null ? el('span', { class: 'muted' }, '(no Origin)') : o.origin,
        refused > 0 ? el('span', {}, ' ', badge(o.outcomes.denied > 0 ? 'denied' : 'would be denied', 'denied')) : null),
      el('td', { class: 'num' }, o.requests),
      el('td', {}, outcomeList(o.outcomes)),
      el('td', {}, outcomeList(o.reasons)),
      el('td', {}, o.routes.join(', ')),
      el('td', { title: o.firstSeen ?? '' }, age(o.firstSeen)),
      el('td', { title: o.lastSeen ?? '' }, age(o.lastSeen))
    )
  }))
  await prefillCandidate(policy)
}

let candidateFor = null
let livePolicies = {}

async function prefillCandidate (policy) {
  if (candidateFor === policy) return
  const { status, body } = await getJson('policies')
  if (status !== 200) return
  livePolicies = body.policies
  const p = livePolicies[policy]
  if (p === undefined) return
  candidateFor = policy
  $('candidate').value = p.origins.filter((e) => e.source === 'file').map((e) => e.pattern).join('\n')
}

async function runDiff (event) {
  event.preventDefault()
  const policy = $('observed-filters').elements.policy.value
  const p = livePolicies[policy]
  if (p === undefined) return
  const { origins: _origins, deny, ...settings } = p
  const candidate = {
    ...settings,
    origins: $('candidate').value.split('\n').map((l) => l.trim()).filter((l) => l !== ''),
    deny: deny.filter((e) => e.source === 'file').map((e) => e.pattern)
  }
  const since = $('observed-filters').elements.since.value
  const { status, body } = await getJson('diff', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ policies: { [policy]: candidate }, since }) })
  const table = $('diff')
  if (status !== 200) {
    table.hidden = true
    $('diff-message').textContent = body.message ?? `HTTP ${status}`
    return
  }
  const flips = body.flips.filter((x) => x.policy === policy)
  $('diff-message').textContent = flips.length === 0
    ? 'No observed origin would change verdict.'
    : `${body.breaking.origins} origins served now would be refused (${body.breaking.requests} requests in ${body.since}).`
  table.hidden = flips.length === 0
  table.tBodies[0].replaceChildren(...flips.map((x) => el('tr', { class: x.breaking ? 'refused' : null },
    el('td', { class: 'origin' }, x.origin === null ? '(no Origin)' : x.origin),
    el('td', { class: 'num' }, x.requests),
    el('td', {}, badge(x.from), ' ', x.fromReason),
    el('td', {}, badge(x.to), ' ', x.toReason),
    el('td', {}, `${x.fromRule ?? '—'} → ${x.toRule ?? '—'}`)
  )))
}

// ---- explain ---------------------------------------------------------------------------------

async function runExplain (event) {
  event.preventDefault()
  const f = $('explain-form').elements
  const q = new URLSearchParams()
  q.set('origin', f.origin.value)
  q.set('method', f.method.value.trim() || 'GET')
  q.set('path', f.path.value.trim() || '/')
  if (f.header.value.trim() !== '') q.set('header', f.header.value.split(',').map((h) => h.trim()).filter((h) => h !== '').join(','))
  if (f.host.value.trim() !== '') q.set('host', f.host.value.trim())
  const { status, body: x } = await getJson(`explain?${q}`)
  const result = $('explain-result')
  result.hidden = false
  if (status !== 200) {
    $('explain-verdict').replaceChildren(badge('error', 'denied'), ` ${x.message ?? `HTTP ${status}`}`)
    return
  }
  const verdict = x.allowed ? 'ALLOWED' : x.decision === 'would_deny' ? 'DENIED (report-only: served anyway)' : 'DENIED'
  $('explain-verdict').replaceChildren(badge(verdict, x.allowed ? 'allowed' : 'denied'), ' ', el('span', { id: 'explain-reason' }, x.reason))
  const facts = [
    ['Decision', x.decision],
    ['Detail', x.detail ?? '—'],
    ['Rule', x.rule === null ? '—' : `${x.rule} (from ${x.ruleSource})`],
    ['Kind', x.kind],
    ['Policy', `${x.policy} (${x.mode})`],
    ['Route', x.route === null ? '(none)' : `${x.route}${x.upstream === null ? '' : ` → ${x.upstream}`}`],
    ['Status', x.status]
  ]
  $('explain-facts').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { 'data-fact': k.toLowerCase() }, v)]))
  $('explain-headers').tBodies[0].replaceChildren(...Object.entries(x.headers).map(([name, value]) => el('tr', {}, el('th', {}, name), el('td', {}, value))))
}

// ---- start -----------------------------------------------------------------------------------

function start () {
  window.addEventListener('hashchange', showTab)
  $('pause').addEventListener('click', () => {
    live.paused = !live.paused
    $('pause').textContent = live.paused ? 'Resume' : 'Pause'
    renderLive()
  })
  $('live-filters').addEventListener('input', renderLive)
  $('live-filters').addEventListener('submit', (e) => e.preventDefault())
  $('observed-filters').addEventListener('submit', (e) => { e.preventDefault(); settle(loadObserved()) })
  $('observed-filters').elements.policy.addEventListener('change', () => { settle(loadObserved()) })
  $('diff-form').addEventListener('submit', (e) => { settle(runDiff(e)) })
  $('explain-form').addEventListener('submit', (e) => { settle(runExplain(e)) })
  settle(refreshOverview().then(showTab))
  setInterval(refreshOverview, OVERVIEW_POLL_MS)
  settle(pollLive())
}

start()
