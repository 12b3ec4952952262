/**
 * Helpers of the CLI tests: the repository root, the built-in scenario names
 * (read from `scenarios/` at collection time), a spawned `gpusvm` run from
 * source (`node src/cli/main.ts …`, Node 22 strips the types) and temp files.
 */
import { spawn } from "node:child_process"
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

/** The repository root (`test/cli/..`). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..")

/** The CLI entry point run from source. */
export const MAIN = join(ROOT, "src", "cli", "main.ts")

/** The built-in scenarios' directory. */
export const SCENARIOS = join(ROOT, "scenarios")

/** File names (without `.json`) of the built-in scenarios, sorted. */
export const builtinNames = (): ReadonlyArray<string> =>
  readdirSync(SCENARIOS).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -".json".length)).sort()

const COMPILE_CACHE = join(tmpdir(), "gpusvm-cli-test-compile-cache")

/** What a spawned `gpusvm` did. */
export interface CliRun {
  readonly status: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  /** Wall time of the whole process, ms. */
  readonly ms: number
}

/**
 * Runs `gpusvm ARGS…` from source in a child process (this Node, cwd = the
 * repository root). Asynchronous, so that tests marked concurrent overlap.
 */
export const gpusvm = (args: ReadonlyArray<string>, timeoutMs = 30_000): Promise<CliRun> =>
  new Promise((resolvePromise, reject) => {
    const started = performance.now()
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd: ROOT,
      // NODE_COMPILE_CACHE: Node 22's on-disk bytecode cache (keyed by source hash) — a third off each start
      env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0", NODE_COMPILE_CACHE: COMPILE_CACHE },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d
    })
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d
    })
    child.on("error", reject)
    child.on("close", (status, signal) => resolvePromise({ status, signal, stdout, stderr, ms: performance.now() - started }))
  })

/** Renders a spawned run for an assertion message. */
export const show = (r: CliRun): string =>
  `exit ${r.status}${r.signal === null ? "" : ` (signal ${r.signal})`}\n--- stdout ---\n${r.stdout.slice(0, 4000)}\n--- stderr ---\n${r.stderr.slice(0, 4000)}`

/** A fresh temp directory; `write(name, content)` puts a file in it and returns its path. */
export const tempDir = (prefix = "gpusvm-cli-") => {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return {
    dir,
    write: (name: string, content: string | object): string => {
      const path = join(dir, name)
      writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content, null, 2))
      return path
    },
    remove: () => rmSync(dir, { recursive: true, force: true })
  }
}
