// Checks the Helm chart (helm/corsgate) offline: `helm lint --strict` and `helm template`
// over the values files in test/fixtures/helm, then assertions on the rendered objects,
// and the rendered corsgate config through `corsgate validate`.
// helm comes from .ci/install-helm.sh. Without it the file is skipped and says so, unless
// CORSGATE_REQUIRE_HELM=1 (as in CI), which makes its absence a failure.
import t from 'tap'
import { findPromtool } from './helpers/tools.js'
import { spawnSync } from 'node:child_process'
import { accessSync, constants, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir, homedir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse, parseAllDocuments } from 'yaml'
import type { z } from 'zod'
import { loadConfig } from '../src/config/load.js'
import { configSchema, policySchema, routeSchema } from '../src/config/schema.js'
import { explain } from '../src/gateway/explain.js'
import { RouteTable } from '../src/gateway/route-table.js'
import { PolicyStore } from '../src/sources/policy-store.js'

// helm renders and `corsgate validate` runs take seconds each on a loaded machine.
t.setTimeout(300_000)

const root = fileURLToPath(new URL('..', import.meta.url))
const chart = join(root, 'helm', 'corsgate')
const fixtures = join(root, 'test', 'fixtures', 'helm')
// Rendering for a fixed Kubernetes version keeps the output independent of how helm was built.
const KUBE_VERSION = '1.31.0'

function findHelm (): string | null {
  const candidates = [
    ...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, 'helm')),
    join(homedir(), 'go', 'bin', 'helm'),
    '/root/go/bin/helm'
  ]
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return null
}

const helm = findHelm()
if (helm === null) {
  const message = 'helm not installed (looked on PATH, in ~/go/bin and /root/go/bin); run `bash .ci/install-helm.sh`'
  if (process.env.CORSGATE_REQUIRE_HELM === '1') {
    t.fail(`${message}, and CORSGATE_REQUIRE_HELM=1 requires it`)
  } else {
    t.plan(0, message)
  }
} else {
  chartChecks(helm)
}

// Kubernetes objects are plain data here; these are the few shapes the assertions read.
interface K8sObject { apiVersion: string, kind: string, metadata: { name: string, labels?: Record<string, string>, annotations?: Record<string, string> }, spec?: any, data?: Record<string, string> }
interface Rendered { status: number, stderr: string, objects: K8sObject[] }

function chartChecks (helm: string): void {
  const run = (args: string[]): { status: number, stdout: string, stderr: string } => {
    const result = spawnSync(helm, args, { cwd: root, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 })
    if (result.error !== undefined) throw result.error
    return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr }
  }
  // The chart ships no policy; a user's values set one (test/fixtures/helm/policy.yaml), and
  // values given after it win. `bare` renders without it.
  const userPolicy = ['-f', join(fixtures, 'policy.yaml')]
  const render = (args: string[], chartDir = chart, bare = false): Rendered => {
    const { status, stdout, stderr } = run(['template', 'rel', chartDir, '--namespace', 'web', '--kube-version', KUBE_VERSION, ...(bare ? [] : userPolicy), ...args])
    const objects = status === 0
      ? parseAllDocuments(stdout).map((doc) => doc.toJS() as K8sObject | null).filter((o): o is K8sObject => o !== null)
      : []
    return { status, stderr, objects }
  }
  const valuesFile = (name: string): string[] => ['-f', join(fixtures, name)]
  const find = (objects: K8sObject[], kind: string, name?: string): K8sObject | undefined =>
    objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name))
  const container = (objects: K8sObject[]): any =>
    find(objects, 'Deployment')?.spec.template.spec.containers.find((c: any) => c.name === 'corsgate')
  const configOf = (objects: K8sObject[]): any => parse(find(objects, 'ConfigMap')?.data?.['config.yaml'] ?? '')
  const checksumOf = (objects: K8sObject[]): string | undefined =>
    find(objects, 'Deployment')?.spec.template.metadata.annotations?.['checksum/config']
  const appVersion = String((parse(readFileSync(join(chart, 'Chart.yaml'), 'utf8')) as { appVersion: string }).appVersion)

  const edgeFixtures: Array<[string, string[]]> = [
    ['chart defaults', []],
    ['edge.yaml', valuesFile('edge.yaml')],
    ['redis-existing-secret.yaml', valuesFile('redis-existing-secret.yaml')],
    ['autoscaling.yaml', valuesFile('autoscaling.yaml')]
  ]
  const allFixtures: Array<[string, string[]]> = [...edgeFixtures, ['sidecar.yaml', valuesFile('sidecar.yaml')]]

  t.test('the values schema knows every setting of corsgate\'s config schema', async (t) => {
    // The chart's schema refuses unknown keys, so a setting added to src/config/schema.ts
    // must be added to helm/corsgate/values.schema.json (and values.yaml) too.
    const keysOf = (schema: z.ZodType | undefined): string[] => {
      let inner: any = schema
      while (inner?._zod?.def?.innerType !== undefined) inner = inner._zod.def.innerType
      return Object.keys(inner.shape ?? {}).sort()
    }
    const values = JSON.parse(readFileSync(join(chart, 'values.schema.json'), 'utf8'))
    const props = (node: any): string[] => Object.keys(node?.properties ?? {}).sort()
    const shape: Record<string, z.ZodType | undefined> = configSchema.shape
    const cases: Array<[string, string[], string[]]> = [
      ['policies.*', props(values.definitions.policy), keysOf(policySchema)],
      ['routes[]', props(values.definitions.route), keysOf(routeSchema)],
      // host and port come from containerPorts; the URL from a Secret.
      // tls comes from the chart's own `tls` values (the Secret mounted at a fixed path).
      ['server', props(values.properties.server), keysOf(shape.server).filter((k) => k !== 'host' && k !== 'port' && k !== 'tls')],
      ['redis', props(values.properties.redis).filter((k) => k !== 'existingSecret' && k !== 'existingSecretKey'), keysOf(shape.redis)],
      ['websocket', props(values.properties.websocket), keysOf(shape.websocket)],
      ['observe', props(values.properties.observe), keysOf(shape.observe)],
      ['log', props(values.properties.log), keysOf(shape.log)]
    ]
    for (const [section, chartKeys, configKeys] of cases) {
      t.same(chartKeys, configKeys, `${section}: values.schema.json has the settings of src/config/schema.ts`)
    }
    t.same(keysOf(shape.admin), ['auth', 'host', 'port'], 'admin: the chart sets host and port itself, and auth from adminAuth')
    const rendered = ['server', 'admin', 'log', 'redis', 'websocket', 'plugins', 'observe', 'policies', 'routes']
    t.same(Object.keys(shape).filter((k) => !rendered.includes(k)), [], 'every top-level config section is rendered by the chart')
  })

  t.test('helm lint --strict passes for the defaults and every fixture', async (t) => {
    for (const [name, args] of allFixtures) {
      const { status, stdout, stderr } = run(['lint', '--strict', chart, '--kube-version', KUBE_VERSION, ...userPolicy, ...args])
      t.equal(status, 0, `${name}: ${status === 0 ? 'lint clean' : stdout + stderr}`)
    }
  })

  t.test('the corsgate container: image, probes, ports, security, drain', async (t) => {
    for (const [name, args] of edgeFixtures) {
      const rendered = render(args)
      t.equal(rendered.status, 0, `${name} renders ${rendered.stderr}`)
      const c = container(rendered.objects)
      t.ok(c, `${name}: a corsgate container`)
      if (c === undefined) continue
      t.equal(c.image, `ghcr.io/corsgate/corsgate:${appVersion}`, `${name}: image tag defaults to appVersion`)
      t.notMatch(c.image, /:latest$/i, `${name}: never latest`)
      const ports = Object.fromEntries(c.ports.map((p: any) => [p.name, p.containerPort]))
      t.same(ports, { http: 8080, admin: 9090 }, `${name}: named ports http and admin`)
      t.same(c.livenessProbe.httpGet, { path: '/healthz', port: 'admin' }, `${name}: liveness GET /healthz on admin`)
      t.same(c.readinessProbe.httpGet, { path: '/readyz', port: 'admin' }, `${name}: readiness GET /readyz on admin`)
      t.same(c.startupProbe.httpGet, { path: '/healthz', port: 'admin' }, `${name}: startup GET /healthz on admin`)
      t.match(c.securityContext, {
        runAsNonRoot: true,
        runAsUser: 1000,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' }
      }, `${name}: restrictive securityContext`)
      t.same(c.args, ['start', '--config', '/etc/corsgate/config.yaml'], `${name}: starts on the mounted config`)
      t.ok(c.volumeMounts.some((m: any) => m.name === 'corsgate-config' && m.mountPath === '/etc/corsgate' && m.readOnly === true), `${name}: config mounted read-only`)
      t.same(c.lifecycle?.preStop?.exec?.command, ['sleep', '5'], `${name}: preStop sleep`)
      const pod = find(rendered.objects, 'Deployment')?.spec.template.spec
      const config = configOf(rendered.objects)
      const drainSeconds = 5 + (config.server.shutdownGraceMs ?? 10_000) / 1000
      t.ok(pod.terminationGracePeriodSeconds > drainSeconds, `${name}: terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} > preStop + drain ${drainSeconds}`)
      t.match(pod.securityContext, { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } }, `${name}: pod securityContext`)
      t.equal(pod.automountServiceAccountToken, false, `${name}: no API token in the pod`)
      t.match(checksumOf(rendered.objects), /^[0-9a-f]{64}$/, `${name}: checksum/config annotation`)
      t.same(config.admin, { host: '0.0.0.0', port: 9090 }, `${name}: admin listens on 0.0.0.0 for the kubelet`)
    }
  })

  t.test('Node\'s heap is bounded below the memory limit through NODE_OPTIONS', async (t) => {
    const nodeOptions = (args: string[]): string | undefined =>
      container(render(args).objects)?.env?.find((e: any) => e.name === 'NODE_OPTIONS')?.value
    t.equal(nodeOptions([]), '--max-old-space-size=192', 'the default 256Mi limit: 75% is 192 MiB')
    t.equal(nodeOptions(['--set', 'resources.limits.memory=1Gi']), '--max-old-space-size=768', '1Gi')
    t.equal(nodeOptions(['--set', 'resources.limits.memory=512M']), '--max-old-space-size=366', '512M (decimal) is 488 MiB')
    t.equal(nodeOptions(['--set-string', 'resources.limits.memory=0.5Gi']), '--max-old-space-size=384', 'a fractional quantity')
    t.equal(nodeOptions(['--set', 'resources.limits.memory=268435456']), '--max-old-space-size=192', 'plain bytes')
    t.equal(nodeOptions(['--set', 'resources.limits.memory=1Gi', '--set', 'heap.percentOfMemoryLimit=50']), '--max-old-space-size=512', 'the percentage is a setting')
    t.equal(nodeOptions(['--set', 'heap.percentOfMemoryLimit=0']), undefined, '0 sets nothing')
    t.equal(nodeOptions(['--set', 'resources.limits=null']), undefined, 'no memory limit, nothing to derive')
    t.equal(nodeOptions(['--set', 'extraEnv[0].name=NODE_OPTIONS', '--set', 'extraEnv[0].value=--max-old-space-size=100']), '--max-old-space-size=100', 'NODE_OPTIONS in extraEnv wins, and appears once')
    const twice = container(render(['--set', 'extraEnv[0].name=NODE_OPTIONS', '--set', 'extraEnv[0].value=--x']).objects)?.env?.filter((e: any) => e.name === 'NODE_OPTIONS')
    t.equal(twice?.length, 1, 'never two NODE_OPTIONS entries')
    const bad = render(['--set', 'resources.limits.memory=12x'])
    t.not(bad.status, 0, 'a memory limit that is not a quantity fails the render')
    t.match(bad.stderr, /resources\.limits\.memory "12x": expected a quantity/)
    const tiny = render(['--set', 'resources.limits.memory=16Mi'])
    t.not(tiny.status, 0)
    t.match(tiny.stderr, /too small a heap/)
  })

  t.test('an image digest replaces the tag', async (t) => {
    const digest = 'sha256:' + 'a'.repeat(64)
    const c = container(render(['--set', `image.digest=${digest}`]).objects)
    t.equal(c?.image, `ghcr.io/corsgate/corsgate@${digest}`)
  })

  t.test('the config checksum follows the config and nothing else', async (t) => {
    const base = checksumOf(render([]).objects)
    const otherPolicy = checksumOf(render(['--set', 'policies.default.origins[0]=https://other.example.com']).objects)
    const otherRoute = checksumOf(render(['--set-json', 'routes=[{"path":"/","upstream":"http://api.web.svc:80"}]']).objects)
    const otherReplicas = checksumOf(render(['--set', 'replicaCount=5']).objects)
    t.ok(base !== undefined && otherPolicy !== undefined)
    t.not(otherPolicy, base, 'changes when a policy changes')
    t.not(otherRoute, base, 'changes when a route changes')
    t.equal(otherReplicas, base, 'stays when only the replica count changes')
  })

  t.test('the Redis URL reaches the pod only through a Secret', async (t) => {
    const existing = render(valuesFile('redis-existing-secret.yaml'))
    const env = container(existing.objects)?.env ?? []
    t.same(env.find((e: any) => e.name === 'CORSGATE_REDIS_URL')?.valueFrom,
      { secretKeyRef: { name: 'corsgate-redis', key: 'url' } }, 'existingSecret: secretKeyRef to the named Secret and key')
    t.equal(find(existing.objects, 'Secret'), undefined, 'existingSecret: the chart makes no Secret')
    t.same(configOf(existing.objects).redis, { keyPrefix: 'cg:', pollIntervalMs: 2000, required: true }, 'the ConfigMap holds the Redis settings but no URL')

    const url = 'redis://:s3cret@redis-master.data.svc:6379/0'
    const made = render(['--set', `redis.url=${url}`])
    const secret = find(made.objects, 'Secret')
    t.equal(secret?.metadata.name, 'rel-corsgate-redis', 'redis.url: the chart makes a Secret')
    t.equal(Buffer.from(secret?.data?.['redis-url'] ?? '', 'base64').toString(), url, 'holding the URL')
    t.same(container(made.objects)?.env?.find((e: any) => e.name === 'CORSGATE_REDIS_URL')?.valueFrom,
      { secretKeyRef: { name: 'rel-corsgate-redis', key: 'redis-url' } }, 'redis.url: secretKeyRef to the chart\'s Secret')
    t.notMatch(find(made.objects, 'ConfigMap')?.data?.['config.yaml'] ?? '', /s3cret/, 'the password is not in the ConfigMap')
    t.match(find(made.objects, 'Deployment')?.spec.template.metadata.annotations, { 'checksum/redis-secret': /^[0-9a-f]{64}$/ }, 'a changed URL rolls the pods')

    const none = render([])
    t.notOk(container(none.objects)?.env?.some((e: any) => e.name === 'CORSGATE_REDIS_URL'), 'no Redis: no CORSGATE_REDIS_URL')
    t.equal(configOf(none.objects).redis, undefined, 'no Redis: file policies only')
  })

  t.test('the schema refuses latest, unknown keys and wrong types', async (t) => {
    const refused: Array<[string, string[]]> = [
      ['image.tag=latest', ['--set', 'image.tag=latest']],
      ['image.tag=LATEST', ['--set', 'image.tag=LATEST']],
      ['an unknown top-level key', ['--set', 'replicas=3']],
      ['a misspelt policy field', ['--set', 'policies.default.orgins[0]=https://a.example.com']],
      ['an unknown mode', ['--set', 'mode=gateway']],
      ['a policy mode outside the enum', ['--set', 'policies.default.mode=audit']],
      ['a route without upstream', ['--set-json', 'routes=[{"path":"/"}]']],
      ['a Redis URL that is not redis://', ['--set', 'redis.url=http://redis:6379']]
    ]
    for (const [name, args] of refused) {
      const rendered = render(args)
      t.not(rendered.status, 0, `${name} is refused`)
      t.match(rendered.stderr, /schema/, `${name}: by the values schema`)
    }
    const undefinedPolicy = render(['--set-json', 'routes=[{"path":"/","upstream":"http://a:80","policy":"nope"}]'])
    t.not(undefinedPolicy.status, 0, 'a route naming an undefined policy is refused')
    t.match(undefinedPolicy.stderr, /routes\[0\]\.policy.*"nope"/, 'with a message naming the route')
    const shortGrace = render(['--set', 'terminationGracePeriodSeconds=5'])
    t.not(shortGrace.status, 0, 'a grace period shorter than the drain is refused')
    t.match(shortGrace.stderr, /terminationGracePeriodSeconds/)
  })

  t.test('the chart allows no origin nobody listed: no placeholder policy, none set fails', async (t) => {
    const bare = render([], chart, true)
    t.not(bare.status, 0, 'an install that sets no policy fails')
    t.match(bare.stderr, /policies: no CORS policy is set\. The chart ships none, so that no origin is allowed that you did not list/, 'with a message saying what to set')
    const lint = run(['lint', '--strict', chart, '--kube-version', KUBE_VERSION])
    // helm lint reports a template `fail` without failing (helm's own rule); it still says so.
    t.match(lint.stdout + lint.stderr, /no CORS policy is set/, 'helm lint on the bare chart says so too')
    const notMap = render(['--set', 'policies.default=x'], chart, true)
    t.not(notMap.status, 0, 'a policy that is not a map is refused')

    // A user's values with other policies get nothing merged in from the chart.
    const own = render(['--set-json', 'policies={"api":{"origins":["https://shop.example.org"]}}', '--set-json', 'routes=[{"path":"/","upstream":"http://api.web.svc:80","policy":"api"}]'], chart, true)
    t.equal(own.status, 0, own.stderr)
    const config = configOf(own.objects)
    t.same(Object.keys(config.policies), ['api'], 'only the policies the user set')
    const dir = mkdtempSync(join(tmpdir(), 'corsgate-placeholder-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, 'config.yaml')
    writeFileSync(file, find(own.objects, 'ConfigMap')?.data?.['config.yaml'] ?? '')
    // What `corsgate check` answers, in process: the rendered file loaded and judged.
    const loaded = loadConfig(file, {})
    const judge = { config: loaded.config, store: new PolicyStore(loaded), routes: new RouteTable(loaded.config.routes) }
    const allowed = (origin: string): boolean => explain(judge, { origin, method: 'GET', path: '/' }).allowed
    t.equal(allowed('https://app.example.com'), false, 'the old placeholder origin is DENIED')
    t.equal(allowed('https://shop.example.org'), true, 'the origin the user listed is ALLOWED')
    const values = parse(readFileSync(join(chart, 'values.yaml'), 'utf8')) as { policies: object }
    t.same(values.policies, {}, 'values.yaml ships no policy')
  })

  t.test('PodDisruptionBudget and HorizontalPodAutoscaler', async (t) => {
    const defaults = render([]).objects
    t.match(find(defaults, 'PodDisruptionBudget'), { apiVersion: 'policy/v1', spec: { maxUnavailable: 1 } }, 'a PDB by default')
    t.equal(find(defaults, 'HorizontalPodAutoscaler'), undefined, 'no HPA by default')
    t.equal(find(defaults, 'Deployment')?.spec.replicas, 2, 'fixed replicas without HPA')

    const scaled = render(valuesFile('autoscaling.yaml')).objects
    const hpa = find(scaled, 'HorizontalPodAutoscaler')
    t.match(hpa, {
      apiVersion: 'autoscaling/v2',
      spec: { scaleTargetRef: { kind: 'Deployment', name: 'rel-corsgate' }, minReplicas: 3, maxReplicas: 12 }
    }, 'HPA on the Deployment when enabled')
    t.same(hpa?.spec.metrics.map((m: any) => [m.resource.name, m.resource.target.averageUtilization]), [['cpu', 60], ['memory', 80]])
    t.equal(find(scaled, 'Deployment')?.spec.replicas, undefined, 'the HPA owns the replica count')
    t.match(find(scaled, 'PodDisruptionBudget')?.spec, { minAvailable: 2 }, 'PDB minAvailable from values')
    t.notOk('maxUnavailable' in (find(scaled, 'PodDisruptionBudget')?.spec ?? {}), 'and not both')
    const spread = find(scaled, 'Deployment')?.spec.template.spec.topologySpreadConstraints
    t.same(spread?.[0]?.labelSelector, { matchLabels: { 'app.kubernetes.io/name': 'corsgate', 'app.kubernetes.io/instance': 'rel' } }, 'spread constraints get the pod selector')
  })

  t.test('admin endpoints stay off the public Service; ServiceMonitor scrapes them', async (t) => {
    const objects = render(valuesFile('edge.yaml')).objects
    const pub = find(objects, 'Service', 'rel-corsgate')
    const admin = find(objects, 'Service', 'rel-corsgate-admin')
    t.same(pub?.spec.ports.map((p: any) => p.targetPort), ['http'], 'the public Service forwards only to http')
    t.equal(admin?.spec.type, 'ClusterIP', 'the admin Service is ClusterIP')
    t.same(admin?.spec.ports.map((p: any) => p.targetPort), ['admin'])
    const monitor = find(objects, 'ServiceMonitor')
    t.match(monitor, { apiVersion: 'monitoring.coreos.com/v1', metadata: { labels: { release: 'kube-prometheus-stack' } } })
    t.match(monitor?.spec.endpoints, [{ port: 'admin', path: '/metrics' }], 'scrapes /metrics on the admin port')
    const selected = monitor?.spec.selector.matchLabels as Record<string, string>
    const matches = (svc: K8sObject | undefined): boolean => Object.entries(selected).every(([k, v]) => svc?.metadata.labels?.[k] === v)
    t.ok(matches(admin), 'selects the admin Service')
    t.notOk(matches(pub), 'and not the public one')
    t.equal(find(render([]).objects, 'ServiceMonitor'), undefined, 'off by default')

    const testPod = objects.find((o) => o.kind === 'Pod' && o.metadata.annotations?.['helm.sh/hook'] === 'test')
    t.ok(testPod, 'a helm test pod')
    t.match(JSON.stringify(testPod?.spec), /rel-corsgate-admin:9090.*\/healthz/, 'which checks /healthz on the admin Service')
    t.ok(find(objects, 'Deployment')?.spec.template.spec.containers[0].env?.some((e: any) => e.name === 'CORSGATE_LOG_LEVEL' && e.value === 'info'), 'extraEnv reaches the container')
  })

  t.test('sidecar mode renders only the ConfigMap; another chart includes the container', async (t) => {
    const own = render(valuesFile('sidecar.yaml'))
    t.same(own.objects.map((o) => o.kind), ['ConfigMap'], 'the chart alone renders only the ConfigMap')

    // The worked example of README "Deploying": a Laravel chart with corsgate as a dependency.
    const dir = mkdtempSync(join(tmpdir(), 'corsgate-helm-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const app = join(dir, 'laravel-app')
    cpSync(join(fixtures, 'laravel-app'), app, { recursive: true })
    cpSync(chart, join(app, 'charts', 'corsgate'), { recursive: true })
    const lint = run(['lint', '--strict', app, '--kube-version', KUBE_VERSION])
    t.equal(lint.status, 0, `the app chart lints clean ${lint.stdout}${lint.stderr}`)
    const rendered = render([], app, true)
    t.equal(rendered.status, 0, `the app chart renders ${rendered.stderr}`)
    const configMap = find(rendered.objects, 'ConfigMap')
    const deployment = find(rendered.objects, 'Deployment', 'rel-laravel')
    const pod = deployment?.spec.template.spec
    t.same(pod?.containers.map((c: any) => c.name), ['corsgate', 'laravel'], 'corsgate runs beside Laravel')
    const corsgate = pod?.containers[0]
    t.same(corsgate?.readinessProbe?.httpGet, { path: '/readyz', port: 'admin' }, 'with its probes')
    t.match(corsgate?.securityContext, { readOnlyRootFilesystem: true, runAsNonRoot: true })
    const configVolume = pod?.volumes.find((v: any) => v.name === 'corsgate-config')
    t.equal(configVolume?.configMap?.name, configMap?.metadata.name, 'mounting the ConfigMap the subchart rendered')
    t.ok(pod?.volumes.some((v: any) => v.name === 'corsgate-tmp' && v.emptyDir), 'and a writable /tmp')
    const service = find(rendered.objects, 'Service')
    const httpPort = corsgate?.ports.find((p: any) => p.name === service?.spec.ports[0].targetPort)
    t.equal(httpPort?.containerPort, 8080, 'the Service targets corsgate, not Laravel')
    t.same(parse(configMap?.data?.['config.yaml'] ?? '').routes.map((r: any) => r.upstream), ['http://127.0.0.1:6001', 'http://127.0.0.1:8000'], 'corsgate forwards to the app on loopback')
    const names = pod?.containers.flatMap((c: any) => (c.ports ?? []).map((p: any) => p.name))
    t.equal(new Set(names).size, names?.length, 'port names are unique in the pod')
    t.match(deployment?.spec.template.metadata.annotations['checksum/config'], /^[0-9a-f]{64}$/, 'the app pods roll on a config change')
  })

  t.test('NOTES.txt renders in both modes', async (t) => {
    // helm renders NOTES.txt only on install, which wants a cluster; render it through
    // tpl in a copy of the chart instead.
    const dir = mkdtempSync(join(tmpdir(), 'corsgate-notes-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const copy = join(dir, 'corsgate')
    cpSync(chart, copy, { recursive: true })
    cpSync(join(chart, 'templates', 'NOTES.txt'), join(copy, 'notes-source.txt'))
    writeFileSync(join(copy, 'templates', 'zz-notes.yaml'), 'kind: RenderedNotes\nnotes: {{ tpl (.Files.Get "notes-source.txt") . | toJson }}\n')
    for (const [name, args] of [...allFixtures, ['redis url', ['--set', 'redis.url=redis://redis:6379']] as [string, string[]]]) {
      const rendered = render(['--show-only', 'templates/zz-notes.yaml', ...args], copy)
      t.equal(rendered.status, 0, `${name}: ${rendered.stderr}`)
      const notes = String((rendered.objects[0] as unknown as { notes: string } | undefined)?.notes ?? '')
      t.match(notes, /corsgate/, `${name}: notes rendered`)
      if (args.join(' ').includes('sidecar')) t.match(notes, /corsgate\.sidecarContainer/, `${name}: explains the include`)
      else t.match(notes, /port-forward svc\/rel-corsgate-admin/, `${name}: explains the admin port-forward`)
    }
  })

  t.test('adminAuth: the token from a Secret, mounted as a file; the ServiceMonitor sends it', async (t) => {
    const on = render(['--set', 'adminAuth.enabled=true', '--set', 'adminAuth.token=t0ken', '--set', 'serviceMonitor.enabled=true'])
    t.equal(on.status, 0, on.stderr)
    const secret = find(on.objects, 'Secret', 'rel-corsgate-admin-token')
    t.equal(Buffer.from(secret?.data?.token ?? '', 'base64').toString(), 't0ken', 'the token is in a Secret of its own')
    t.notMatch(find(on.objects, 'ConfigMap')?.data?.['config.yaml'] ?? '', /t0ken/, 'and not in the ConfigMap')
    t.same(configOf(on.objects).admin, { host: '0.0.0.0', port: 9090, auth: { tokenFile: '/var/run/corsgate/admin-token/token', openMetrics: false } })
    const c = container(on.objects)
    t.match(c.volumeMounts, [{}, {}, { name: 'corsgate-admin-token', mountPath: '/var/run/corsgate/admin-token', readOnly: true }])
    t.notOk((c.env ?? []).some((e: any) => JSON.stringify(e).includes('t0ken')), 'no token in the environment')
    const volumes = find(on.objects, 'Deployment')?.spec.template.spec.volumes
    t.match(volumes.find((v: any) => v.name === 'corsgate-admin-token'), { secret: { secretName: 'rel-corsgate-admin-token', items: [{ key: 'token', path: 'token' }] } })
    t.match(find(on.objects, 'ServiceMonitor')?.spec.endpoints[0].authorization, { type: 'Bearer', credentials: { name: 'rel-corsgate-admin-token', key: 'token' } }, 'Prometheus sends the token')
    t.ok(find(on.objects, 'Deployment')?.spec.template.metadata.annotations?.['checksum/admin-token'], 'a new token rolls the pods')

    const existing = render(['--set', 'adminAuth.enabled=true', '--set', 'adminAuth.existingSecret=ops-token', '--set', 'adminAuth.existingSecretKey=value', '--set', 'adminAuth.openMetrics=true', '--set', 'serviceMonitor.enabled=true'])
    t.equal(existing.status, 0, existing.stderr)
    t.equal(find(existing.objects, 'Secret', 'rel-corsgate-admin-token'), undefined, 'an existing Secret: none of the chart\'s')
    t.match(find(existing.objects, 'Deployment')?.spec.template.spec.volumes.find((v: any) => v.name === 'corsgate-admin-token'), { secret: { secretName: 'ops-token', items: [{ key: 'value', path: 'token' }] } })
    t.equal(configOf(existing.objects).admin.auth.openMetrics, true)
    t.equal(find(existing.objects, 'ServiceMonitor')?.spec.endpoints[0].authorization, undefined, 'openMetrics: scraped without the token')

    const noToken = render(['--set', 'adminAuth.enabled=true'])
    t.not(noToken.status, 0)
    t.match(noToken.stderr, /adminAuth\.enabled: set adminAuth\.existingSecret .* or adminAuth\.token/)
    const off = render([])
    t.equal(configOf(off.objects).admin.auth, undefined, 'off by default')
    t.notOk(container(off.objects).volumeMounts.some((m: any) => m.name === 'corsgate-admin-token'))
  })

  t.test('the Grafana dashboard and the PrometheusRule render when switched on', async (t) => {
    const off = render(['--set', 'redis.url=redis://redis:6379'])
    t.equal(off.objects.find((o) => o.metadata.labels?.grafana_dashboard !== undefined), undefined, 'no dashboard by default')
    t.equal(find(off.objects, 'PrometheusRule'), undefined, 'no rules by default')

    const on = render(['--set', 'redis.url=redis://redis:6379', '--set', 'grafanaDashboard.enabled=true', '--set', 'grafanaDashboard.namespace=monitoring', '--set', 'prometheusRule.enabled=true', '--set', 'prometheusRule.labels.release=kps', '--set-json', 'prometheusRule.denialRatio.threshold=0.3'])
    t.equal(on.status, 0, on.stderr)
    const dashboard = find(on.objects, 'ConfigMap', 'rel-corsgate-dashboard')
    t.match(dashboard?.metadata, { namespace: 'monitoring', labels: { grafana_dashboard: '1' } }, 'labelled for Grafana\'s sidecar')
    t.same(JSON.parse(dashboard?.data?.['corsgate.json'] ?? '{}'), JSON.parse(readFileSync(join(chart, 'dashboards', 'corsgate.json'), 'utf8')), 'the dashboard JSON, whole')

    const rule = find(on.objects, 'PrometheusRule')
    t.match(rule, { apiVersion: 'monitoring.coreos.com/v1', metadata: { name: 'rel-corsgate', namespace: 'web', labels: { release: 'kps' } } })
    const alerts = (rule?.spec.groups[0].rules ?? []) as Array<{ alert: string, expr: string }>
    t.same(alerts.map((r) => r.alert), ['CorsgateWhitelistStale', 'CorsgateRedisDisconnected', 'CorsgateDenialRatioJump', 'CorsgateUpstreamErrors', 'CorsgateNoReadyReplicas'])
    t.match(alerts.find((r) => r.alert === 'CorsgateDenialRatioJump')?.expr, /> 0\.3\n/, 'thresholds come from values')
    t.match(alerts.find((r) => r.alert === 'CorsgateWhitelistStale')?.expr, /> 600/, 'whitelistStale.minutes, in seconds')
    t.match(alerts[0]?.expr, /namespace="web", service="rel-corsgate-admin"/, 'this release\'s series')
    t.ok(alerts.every((r) => !/\borigin\b/.test(r.expr)), 'no origin label anywhere')

    const dir = mkdtempSync(join(tmpdir(), 'corsgate-rules-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const promtool = findPromtool()
    if (promtool === null) {
      t.comment('promtool not installed (Debian package prometheus): rule syntax not checked')
    } else {
      writeFileSync(join(dir, 'rules.yaml'), JSON.stringify(rule?.spec))
      const checked = spawnSync(promtool, ['check', 'rules', join(dir, 'rules.yaml')], { encoding: 'utf8' })
      t.equal(checked.status, 0, `promtool check rules: ${checked.stdout}${checked.stderr}`)
    }

    const everything = ['--set', 'redis.url=redis://redis:6379', '--set', 'grafanaDashboard.enabled=true', '--set', 'prometheusRule.enabled=true', '--set', 'adminAuth.enabled=true', '--set', 'adminAuth.token=t', '--set', 'serviceMonitor.enabled=true']
    const lint = run(['lint', '--strict', chart, '--kube-version', KUBE_VERSION, ...userPolicy, ...everything])
    t.equal(lint.status, 0, `helm lint --strict with all of them on: ${lint.stdout}${lint.stderr}`)

    const noRedis = render(['--set', 'prometheusRule.enabled=true'])
    t.same((find(noRedis.objects, 'PrometheusRule')?.spec.groups[0].rules as Array<{ alert: string }>).map((r) => r.alert), ['CorsgateDenialRatioJump', 'CorsgateUpstreamErrors', 'CorsgateNoReadyReplicas'], 'Redis alerts only when Redis is configured')
    const sidecar = render([...valuesFile('sidecar.yaml'), '--set', 'prometheusRule.enabled=true', '--set', 'prometheusRule.selector=job="shop"'])
    const sidecarRules = find(sidecar.objects, 'PrometheusRule')?.spec.groups[0].rules as Array<{ alert: string, expr: string }>
    t.notOk(sidecarRules.some((r) => r.alert === 'CorsgateNoReadyReplicas'), 'sidecar: no Deployment of its own to watch')
    t.ok(sidecarRules.every((r) => r.expr.includes('job="shop"')), 'prometheusRule.selector replaces the default matchers')
  })

  t.test('TLS from an existing Secret: mounted as a directory, config pointing at it, Service port https', async (t) => {
    const plain = render([])
    t.equal(find(plain.objects, 'Service', 'rel-corsgate')?.spec.ports[0].name, 'http', 'no TLS: the port is http')
    t.equal(configOf(plain.objects).server.tls, undefined)
    t.notOk(find(plain.objects, 'Deployment')?.spec.template.spec.volumes.some((v: any) => v.name === 'corsgate-tls'), 'no TLS: no certificate volume')

    const rendered = render(['--set', 'tls.existingSecret=web-tls'])
    t.equal(rendered.status, 0, rendered.stderr)
    const service = find(rendered.objects, 'Service', 'rel-corsgate')
    t.match(service?.spec.ports, [{ name: 'https', port: 443, targetPort: 'https', protocol: 'TCP', appProtocol: 'https' }])
    t.equal(service?.spec.ports.length, 1)
    const c = container(rendered.objects)
    t.match(c.ports, [{ name: 'https', containerPort: 8080 }, { name: 'admin', containerPort: 9090 }])
    const mount = c.volumeMounts.find((m: any) => m.name === 'corsgate-tls')
    t.match(mount, { mountPath: '/etc/corsgate-tls', readOnly: true })
    t.equal(mount.subPath, undefined, 'no subPath: Secret updates reach the pod')
    const volume = find(rendered.objects, 'Deployment')?.spec.template.spec.volumes.find((v: any) => v.name === 'corsgate-tls')
    t.match(volume, { secret: { secretName: 'web-tls' } })
    t.same(configOf(rendered.objects).server.tls, { certFile: '/etc/corsgate-tls/tls.crt', keyFile: '/etc/corsgate-tls/tls.key', http2: true, minVersion: 'TLSv1.2', requestCert: false })
    t.match(find(rendered.objects, 'Pod')?.spec.containers[0].args[0], /https:\/\/rel-corsgate:443/, 'helm test reaches the https port')

    const mtls = render(['--set', 'tls.existingSecret=web-tls', '--set', 'tls.requestCert=true', '--set', 'tls.minVersion=TLSv1.3', '--set', 'tls.http2=false'])
    t.same(configOf(mtls.objects).server.tls, { certFile: '/etc/corsgate-tls/tls.crt', keyFile: '/etc/corsgate-tls/tls.key', caFile: '/etc/corsgate-tls/ca.crt', http2: false, minVersion: 'TLSv1.3', requestCert: true })
    const bad = render(['--set', 'tls.existingSecret=web-tls', '--set', 'tls.minVersion=TLSv1.1'])
    t.not(bad.status, 0, 'an old TLS version is refused by the values schema')
    t.match(bad.stderr, /minVersion/)

    // The rendered config, with the Secret's files where the mount puts them, starts checks.
    const dir = mkdtempSync(join(tmpdir(), 'corsgate-helm-tls-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const pem = (args: string[]): void => { spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' }) }
    pem(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'tls.key', '-out', 'tls.crt', '-subj', '/CN=app.example.com', '-days', '1'])
    cpSync(join(dir, 'tls.crt'), join(dir, 'ca.crt'))
    for (const [name, r] of [['tls', rendered], ['mtls', mtls]] as const) {
      const text = (find(r.objects, 'ConfigMap')?.data?.['config.yaml'] ?? '').replaceAll('/etc/corsgate-tls/', `${dir}/`)
      const file = join(dir, `${name}.yaml`)
      writeFileSync(file, text)
      t.doesNotThrow(() => loadConfig(file, {}), `${name}: the rendered config loads with the Secret's files`)
    }
  })

  t.test('the rendered config passes `corsgate validate`', async (t) => {
    const cli = join(root, 'src', 'cli.ts')
    const dir = mkdtempSync(join(tmpdir(), 'corsgate-validate-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const cases: Array<[string, string[]]> = [...allFixtures, ['redis url', ['--set', 'redis.url=redis://redis:6379/0']]]
    for (const [i, [name, args]] of cases.entries()) {
      const rendered = render(args)
      const text = find(rendered.objects, 'ConfigMap')?.data?.['config.yaml']
      t.ok(text, `${name}: a ConfigMap with config.yaml`)
      const file = join(dir, `config-${i}.yaml`)
      writeFileSync(file, text ?? '')
      const env = { ...process.env }
      for (const key of Object.keys(env)) if (key.startsWith('CORSGATE_')) delete env[key]
      const result = spawnSync(process.execPath, ['--import', 'tsx', cli, 'validate', '--config', file], { cwd: root, encoding: 'utf8', env, timeout: 60_000 })
      t.equal(result.status, 0, `${name}: corsgate validate exits 0 ${result.stdout}${result.stderr}`)
    }
  })
}
