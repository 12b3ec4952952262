/**
 * gpusvm as a package (issue #15 part 8): `npm pack` the repository into a
 * temporary directory, install the tarball into a fresh project there (`npm
 * init -y`, `npm pkg set type=module`, `npm install <tarball> node@22` offline-first
 * from the npm cache), and use it the way the README tells a user to: the
 * README's "### As a library" snippet, copied verbatim, runs with `npx node
 * main.ts` and prints what its last comment says; `npx gpusvm simulate
 * approx-once-malloc` exits 0; the snippet typechecks against the tarball's
 * declarations; `gpusvm/testing` imports.
 *
 * One pack + install is shared by every test of the file (beforeAll); the
 * children run with the npm-script PATH entries of this repository removed, so
 * the project sees only what it installed. Times of each stage are printed.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { delimiter, dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..")
const README = readFileSync(join(ROOT, "README.md"), "utf8")
const PKG = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  readonly name: string
  readonly exports: Record<string, unknown>
  readonly devDependencies: Record<string, string>
}
/** Does this checkout have the test kit (`gpusvm/testing`, issue #15 part 5)? Its build lands in dist/testing. */

/**
 * The code block under the README's `### As a library` heading, verbatim, and
 * the line its `console.log` comment promises (`… .then(console.log) // LINE`).
 */
const librarySnippet = (): { readonly code: string; readonly expected: string } => {
  const section = README.split(/^### As a library\s*$/m)[1]
  assert.isDefined(section, "README.md has a `### As a library` section")
  const code = /```ts\n([\s\S]*?)```/.exec(section!.split(/^##/m)[0]!)?.[1]
  assert.isDefined(code, "the `### As a library` section has a ```ts code block")
  const expected = /console\.log\)?[^\n]*\/\/\s*(.+)$/m.exec(code!)?.[1]?.trim()
  assert.isDefined(expected, "the snippet's console.log line ends with a comment naming the printed line")
  return { code: code!, expected: expected! }
}

/** What a child process did. */
interface Run {
  readonly status: number | null
  readonly stdout: string
  readonly stderr: string
  readonly ms: number
}

/**
 * The environment of a user's shell: this process's, without the variables npm
 * sets for a script (`npm_*`, `INIT_CWD`) and without the `node_modules/.bin`
 * entries npm put on PATH (this repository's pinned Node 22 among them).
 */
const userEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_/i.test(k) && k !== "INIT_CWD" && k !== "NODE") env[k] = v
  }
  env["PATH"] = (process.env["PATH"] ?? "").split(delimiter)
    .filter((p) => !/[\\/]node_modules[\\/]\.bin$/.test(p) && !/node-gyp-bin$/.test(p))
    .join(delimiter)
  return { ...env, NO_COLOR: "1", FORCE_COLOR: "0", npm_config_update_notifier: "false" }
}

const run = (cmd: string, args: ReadonlyArray<string>, cwd: string, timeoutMs = 90_000): Promise<Run> =>
  new Promise((resolvePromise) => {
    const started = performance.now()
    execFile(cmd, args, { cwd, env: userEnv(), timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, encoding: "utf8" }, (error, stdout, stderr) => {
      // a non-zero exit is `error.code` (a number); a spawn failure or a timeout has no exit status
      const status = error === null ? 0 : typeof error.code === "number" ? error.code : null
      resolvePromise({ status, stdout, stderr: error !== null && status === null ? `${stderr}\n${error.message}` : stderr, ms: performance.now() - started })
    })
  })

const show = (r: Run) => `exit ${r.status}\n--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`

const OFFLINE_FIRST = ["--prefer-offline", "--no-audit", "--no-fund"]

/** The shared pack + install: the tarball, its file list, the consumer project. */
interface Installed {
  readonly tarball: string
  readonly files: ReadonlyArray<string>
  readonly project: string
  readonly install: Run
}

let tmp = ""
let installed: Installed | undefined
let setupError: unknown
const times: Record<string, number> = {}
const fileStarted = performance.now()

const ready = (): Installed => {
  if (installed === undefined) throw new Error(`pack + install failed: ${String(setupError)}`)
  return installed
}

beforeAll(async () => {
  try {
    tmp = mkdtempSync(join(tmpdir(), "gpusvm-pack-"))
    // npm pack runs `prepare` (tsc -p tsconfig.build.json), so dist/ is this checkout's source.
    const pack = await run("npm", ["pack", "--pack-destination", tmp, "--json"], ROOT)
    times["npm pack"] = pack.ms
    if (pack.status !== 0) throw new Error(`npm pack: ${show(pack)}`)
    const listing = JSON.parse(pack.stdout.slice(pack.stdout.indexOf("["))) as ReadonlyArray<{
      readonly filename: string
      readonly files: ReadonlyArray<{ readonly path: string }>
    }>
    const tarball = join(tmp, listing[0]!.filename)

    const project = join(tmp, "consumer")
    mkdirSync(project)
    const init = await run("npm", ["init", "-y"], project)
    if (init.status !== 0) throw new Error(`npm init -y: ${show(init)}`)
    const esm = await run("npm", ["pkg", "set", "type=module"], project)
    if (esm.status !== 0) throw new Error(`npm pkg set type=module: ${show(esm)}`)

    // The README's instruction: the tarball (or the registry's gpusvm) and the project's Node 22, so `npx node file.ts` runs .ts.
    const nodeSpec = `node@${PKG.devDependencies["node"] ?? "22"}`
    const install = await run("npm", ["install", tarball, nodeSpec, ...OFFLINE_FIRST], project, 120_000)
    times["npm install"] = install.ms
    if (install.status !== 0) throw new Error(`npm install ${tarball} ${nodeSpec}: ${show(install)}`)
    installed = { tarball, files: listing[0]!.files.map((f) => f.path), project, install }
  } catch (e) {
    setupError = e
  }
}, 150_000)

afterAll(async () => {
  const native = installed === undefined ? undefined : join(installed.project, "node_modules", PKG.name, "native", "build", "native-status.json")
  const status = native !== undefined && existsSync(native) ? readFileSync(native, "utf8").replace(/\s+/g, " ") : "absent (postinstall did not run)"
  const stages = Object.entries(times).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(", ")
  console.log(`pack.test: ${stages}; whole file ${((performance.now() - fileStarted) / 1000).toFixed(1)} s; native helper in the consumer: ${status}`)
  if (tmp !== "") await rm(tmp, { recursive: true, force: true }) // the project's node_modules holds a Node binary: slow to delete under load
}, 60_000)

describe("gpusvm as a package: npm pack → a fresh project → the README's usage (#15 part 8)", () => {
  it("#15 part 8: the tarball holds dist (stacks and testing included), bin, scenarios and the native helper's sources and build script, and no tests", () => {
    const { files } = ready()
    const has = (p: string) => files.includes(p)
    for (const p of ["package.json", "README.md", "bin/gpusvm.js", "dist/index.js", "dist/index.d.ts", "dist/cli/main.js", "dist/stacks/Driver.js", "dist/stacks/Driver.d.ts", "scenarios/approx-once-malloc.json", "native/helper.c", "native/build.mjs"]) {
      assert.isTrue(has(p), `${p} is in the tarball`)
    }
    assert.isTrue(has("dist/testing/index.js") && has("dist/testing/index.d.ts"), "dist/testing is in the tarball")
    assert.deepStrictEqual(files.filter((p) => /^(test|bench|scripts)\//.test(p) || p.startsWith("native/build/")), [], "no tests, benchmarks, scripts or host build output in the tarball")
    // every export's target is a file the build emits
    for (const [key, target] of Object.entries(PKG.exports)) {
      if (typeof target !== "object" || target === null || key.includes("*")) continue
      for (const p of Object.values(target as Record<string, string>)) assert.isTrue(has(p.replace(/^\.\//, "")), `export ${key} → ${p} is in the tarball`)
    }
    assert.deepStrictEqual(PKG.exports["./testing"], { types: "./dist/testing/index.d.ts", default: "./dist/testing/index.js" })
  })

  it("#15 part 8: every file the README links to is in the tarball (docs/ ships, so the installed package's README links resolve)", () => {
    const { files } = ready()
    const targets = [...README.replace(/```[\s\S]*?```/g, "").matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)].map((m) => m[1]!.replace(/\/$/, ""))
    assert.isAbove(targets.length, 0)
    const missing = targets.filter((t) => !files.some((f) => f === t || f.startsWith(`${t}/`)))
    assert.deepStrictEqual(missing, [], "README links to files the tarball does not hold")
  })

  it("#15 part 8: the README's `As a library` snippet, copied verbatim into main.ts, runs with `npx node main.ts` and prints the line its comment says", async () => {
    const { project } = ready()
    const { code, expected } = librarySnippet()
    writeFileSync(join(project, "main.ts"), code)
    const r = await run("npx", ["node", "main.ts"], project)
    times["npx node main.ts"] = r.ms
    assert.strictEqual(r.status, 0, show(r))
    assert.strictEqual(r.stdout.trim(), expected, show(r))
  }, 60_000)

  it("#15 part 8: `npx node` in the project is the Node 22 the README tells a user to install (type stripping, ≥ 22.12)", async () => {
    const { project } = ready()
    const r = await run("npx", ["node", "--version"], project)
    assert.strictEqual(r.status, 0, show(r))
    const [major, minor] = r.stdout.trim().replace(/^v/, "").split(".").map(Number)
    assert.isTrue(major! > 22 || (major === 22 && minor! >= 12), `npx node is ${r.stdout.trim()}`)
  }, 60_000)

  it("#15 part 8: the snippet typechecks against the tarball's declarations (the exports' `types` conditions resolve)", async () => {
    const { project } = ready()
    const { code } = librarySnippet()
    writeFileSync(join(project, "snippet.ts"), code)
    writeFileSync(join(project, "tsconfig.json"), JSON.stringify({
      compilerOptions: {
        target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", lib: ["ES2023", "DOM"], types: [],
        strict: true, exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true, skipLibCheck: true, noEmit: true
      },
      files: ["snippet.ts"]
    }, null, 2))
    const r = await run(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "."], project)
    times["tsc snippet"] = r.ms
    assert.strictEqual(r.status, 0, show(r))
  }, 60_000)

  it("#15 part 8: `npx gpusvm simulate approx-once-malloc` (a built-in scenario) exits 0 in the project", async () => {
    const { project } = ready()
    const r = await run("npx", ["gpusvm", "simulate", "approx-once-malloc"], project)
    times["npx gpusvm simulate approx-once-malloc"] = r.ms
    assert.strictEqual(r.status, 0, show(r))
    assert.match(r.stdout, /approx-once-malloc\s+ok/, show(r))
    assert.match(r.stdout, /1 passed, 0 failed/, show(r))
  }, 60_000)

  it("#15 part 8: the README's `Use it from your project` says to install node@22 beside the tarball and run `.ts` with `npx node file.ts`; the two set-up commands stay", () => {
    const section = README.split(/^### Use it from your project\s*$/m)[1]?.split(/^##/m)[0]
    assert.isDefined(section, "README.md has a `### Use it from your project` section")
    assert.include(section!, "npx node file.ts")
    assert.match(section!, /npm install \S+\.tgz node@22/)
    assert.include(section!, "npx gpusvm simulate")
    const setUp = README.split(/^## Set up\s*$/m)[1]!.split(/^## /m)[0]!
    assert.deepStrictEqual([...setUp.matchAll(/```sh\n([^`]*)```/g)].map((m) => m[1]!.trim()), ["npm install && npx gpusvm simulate", "npm install && npm test"])
  })

  it("#15 part 8: `gpusvm/testing` imports from the project", async () => {
    const { project } = ready()
    writeFileSync(join(project, "kit.mjs"), `const kit = await import("gpusvm/testing")\nconsole.log(Object.keys(kit).sort().join(","))\n`)
    const r = await run("npx", ["node", "kit.mjs"], project)
    assert.strictEqual(r.status, 0, show(r))
    assert.isAbove(r.stdout.trim().length, 0, "gpusvm/testing exports something")
  }, 60_000)
})
