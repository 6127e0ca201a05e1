// Holds the Dockerfile to the image rules of issue 5 without a Docker engine: it is parsed
// with dockerfile-ast (the parser behind the Dockerfile language server) and each rule is
// checked on the parsed instructions. .ci/lint-dockerfile.sh does the generic lint;
// .ci/image.sh builds the image for real and runs it.
import t from 'tap'
import { readFileSync, existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { DockerfileParser, type Copy, type Instruction, type JSONInstruction } from 'dockerfile-ast'
import { nodeSupportWarning } from '../src/node-support.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const dockerfile = DockerfileParser.parse(readFileSync(join(root, 'Dockerfile'), 'utf8'))

interface Stage { name: string | null, image: string, instructions: Instruction[] }

// ARGs declared before the first FROM are the only ones a FROM line can use.
const initialArgs = new Map<string, string>()
for (const arg of dockerfile.getInitialARGs()) {
  const property = arg.getProperty()
  if (property !== null) initialArgs.set(property.getName(), property.getValue() ?? '')
}
const expand = (text: string): string =>
  text.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => initialArgs.get(a ?? b ?? '') ?? '')

const stages: Stage[] = []
for (const instruction of dockerfile.getInstructions()) {
  if (instruction.getKeyword() === 'FROM') {
    const [image = '', , name = null] = instruction.getArguments().map((a) => a.getValue())
    stages.push({ name, image: expand(image), instructions: [] })
  } else {
    stages.at(-1)?.instructions.push(instruction)
  }
}
const runtime = stages.at(-1)
const buildStages = stages.slice(0, -1)
const of = (stage: Stage | undefined, keyword: string): Instruction[] =>
  stage?.instructions.filter((i) => i.getKeyword() === keyword) ?? []
const argsOf = (instruction: Instruction): string => instruction.getArguments().map((a) => a.getValue()).join(' ')
const copiesFromStage = (copy: Instruction): boolean => (copy as Copy).getFromFlag() !== null
const jsonOf = (instruction: Instruction | undefined): string[] | null => {
  if (instruction === undefined) return null
  const strings = (instruction as JSONInstruction).getJSONStrings?.() ?? []
  return strings.length > 0 ? strings.map((s) => s.getJSONValue()) : null
}

t.test('is a multi-stage build that compiles in one stage and ships another', async (t) => {
  t.ok(stages.length >= 2, `${stages.length} stage(s)`)
  const buildRuns = buildStages.flatMap((s) => of(s, 'RUN')).map(argsOf).join('\n')
  t.match(buildRuns, /npm ci\b/, 'installs from the lockfile with npm ci')
  t.match(buildRuns, /npm run build\b/, 'compiles with npm run build')
  t.match(buildRuns, /npm prune --omit=dev|npm ci [^\n]*--omit=dev/, 'drops dev dependencies')
  const copiedFrom = of(runtime, 'COPY').filter(copiesFromStage)
  t.ok(copiedFrom.some((c) => argsOf(c).includes('/app/dist')), 'the runtime copies dist from the build stage')
  t.notMatch(of(runtime, 'RUN').map(argsOf).join('\n'), /\bnpm\b/, 'the runtime stage runs no npm')
})

t.test('bases every stage on a pinned Node 24 slim image, never latest', async (t) => {
  for (const stage of stages) {
    const [, tag = ''] = stage.image.split(/:(?=[^/]*$)/)
    t.ok(tag !== '' && tag !== 'latest', `${stage.name ?? 'stage'}: ${stage.image} has an explicit tag other than latest`)
    const version = /^node:(24\.\d+\.\d+)-[a-z]+-slim(@sha256:[0-9a-f]{64})?$/.exec(stage.image)?.[1]
    t.ok(version, `${stage.name ?? 'stage'}: ${stage.image} is Node 24 slim, pinned to a release`)
    t.equal(nodeSupportWarning(version ?? '0.0.0'), undefined, `${stage.name ?? 'stage'}: Node ${version ?? '?'} has the fixes src/node-support.ts asks for`)
  }
})

t.test('runs as the non-root node user under tini, in exec form', async (t) => {
  const users = of(runtime, 'USER').map(argsOf)
  // By number: Kubernetes' runAsNonRoot cannot verify a user name.
  t.match(users.at(-1), /^1000(:1000)?$/, 'the last USER of the runtime stage is uid 1000 (node), numeric')
  t.match(of(runtime, 'RUN').map(argsOf).join('\n'), /apt-get install [^\n]*\btini\b/, 'tini comes from Debian\'s packages')
  const entrypoint = of(runtime, 'ENTRYPOINT')
  t.equal(entrypoint.length, 1, 'one ENTRYPOINT')
  t.same(jsonOf(entrypoint[0]), ['/usr/bin/tini', '--', 'node', '--min-semi-space-size=16', 'dist/cli.js'], 'exec-form ENTRYPOINT: tini, then node with a young-generation floor (src/startup-garbage.ts)')
  const cmd = jsonOf(of(runtime, 'CMD').at(-1))
  t.ok(cmd !== null, 'CMD is in exec form')
  t.equal(cmd?.[0], 'start', 'CMD starts the gateway')
  t.notMatch(readFileSync(join(root, 'Dockerfile'), 'utf8').replace(/^#.*$/gm, ''), /npm start/, 'never npm start')
})

t.test('sets NODE_ENV=production, exposes both ports and checks health on the admin port', async (t) => {
  const env = new Map<string, string | null>()
  for (const e of of(runtime, 'ENV')) {
    for (const p of (e as unknown as { getProperties(): Array<{ getName(): string, getValue(): string | null }> }).getProperties()) env.set(p.getName(), p.getValue())
  }
  t.equal(env.get('NODE_ENV'), 'production')
  const exposed = of(runtime, 'EXPOSE').flatMap((e) => e.getArguments().map((a) => a.getValue()))
  t.ok(exposed.includes('8080') && exposed.includes('9090'), `EXPOSE ${exposed.join(' ')}`)
  const healthcheck = of(runtime, 'HEALTHCHECK')
  t.equal(healthcheck.length, 1, 'one HEALTHCHECK')
  // The CLI's own probe reads the admin address from the config the container runs with.
  const raw = healthcheck[0]?.getRawArgumentsContent() ?? ''
  t.match(raw, /CMD\s+\["node",\s*"dist\/cli\/health\.js"\]/, 'CMD is `node dist/cli/health.js` (corsgate health without the server modules), in exec form')
  t.ok(existsSync(join(root, 'src', 'cli', 'health.ts')), 'src/cli/health.ts compiles to dist/cli/health.js')
  t.notMatch(raw, /9090|CORSGATE_ADMIN_PORT/, 'no admin port of its own: the config decides')
  t.notMatch(raw, /\bcurl\b|\bwget\b/, 'with node itself: slim has no curl')
  t.equal(env.get('CORSGATE_CONFIG'), '/etc/corsgate/config.yaml', 'CORSGATE_CONFIG names the mounted file, so start and health read the same one')
  t.same(jsonOf(of(runtime, 'CMD').at(-1)), ['start'], 'CMD starts with the CORSGATE_CONFIG file, not a --config of its own')
})

t.test('has no # syntax= directive: BuildKit would pull that frontend image from a registry', async (t) => {
  t.notMatch(readFileSync(join(root, 'Dockerfile'), 'utf8'), /^#\s*syntax\s*=/im)
})

// .dockerignore semantics: patterns in order, the last match wins, `!` re-includes, and a
// pattern that matches a folder covers everything under it.
function dockerignored (path: string, patterns: string[]): boolean {
  const toRegExp = (glob: string): RegExp => new RegExp('^' + glob.replace(/^\/+|\/+$/g, '')
    .split(/(\*\*\/?|\*|\?)/)
    .map((part) => part.startsWith('**') ? '(?:.*/)?' : part === '*' ? '[^/]*' : part === '?' ? '[^/]' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&'))
    .join('') + '$')
  const prefixes = path.split('/').map((_, i, all) => all.slice(0, i + 1).join('/'))
  let ignored = false
  for (const raw of patterns) {
    const negate = raw.startsWith('!')
    const re = toRegExp(negate ? raw.slice(1) : raw)
    if (prefixes.some((p) => re.test(p))) ignored = !negate
  }
  return ignored
}

t.test('.dockerignore sends what the Dockerfile copies and nothing else', async (t) => {
  const patterns = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n')
    .map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
  const sources = stages.flatMap((s) => of(s, 'COPY'))
    .filter((c) => !copiesFromStage(c))
    .flatMap((c) => c.getArguments().slice(0, -1).map((a) => a.getValue()))
  t.ok(sources.length > 0, 'the Dockerfile copies from the context')
  for (const source of sources) {
    t.notOk(dockerignored(source, patterns), `${source} is in the build context`)
    t.ok(existsSync(join(root, source)), `${source} exists`)
  }
  for (const path of ['node_modules/fastify/package.json', 'dist/cli.js', '.git/HEAD', 'test/helm.test.ts', 'bench/run.ts', 'helm/corsgate/Chart.yaml', 'coverage/x', '.tap/x', '.env', 'src/x.test.ts']) {
    t.ok(dockerignored(path, patterns), `${path} stays out of the context`)
  }
})
