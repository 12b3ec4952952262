#!/usr/bin/env node
/**
 * Builds the native machine's helper process: `cc -O2 -pthread` of
 * `native/helper.c` into `native/build/gpusvm-helper`, and records the outcome
 * in `native/build/native-status.json` ({ ok, stage, stderr, cc, ms, at }).
 *
 * Never fails: a missing compiler or a failed build exits 0 with the failure
 * recorded (so `npm install` always succeeds; the native layer reports the
 * recorded failure as `HelperUnavailable`). Skips the compile when the binary
 * is newer than the source, unless `--force`.
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const src = join(here, "helper.c")
const outDir = join(here, "build")
const bin = join(outDir, "gpusvm-helper")
const statusFile = join(outDir, "native-status.json")

const record = (status) => {
  try {
    mkdirSync(outDir, { recursive: true })
    writeFileSync(statusFile, JSON.stringify({ ...status, at: new Date().toISOString() }, null, 2) + "\n")
  } catch {
    // nothing more we can do; still exit 0
  }
  const line = status.ok ? `gpusvm: native helper ${status.stage} (${bin})` : `gpusvm: native helper not built (${status.stage}): ${status.stderr}`
  process.stdout.write(line + "\n")
}

try {
  if (process.platform !== "linux") {
    record({ ok: false, stage: "platform", stderr: `not Linux (${process.platform})`, cc: null, ms: 0 })
  } else {
    const force = process.argv.includes("--force")
    const fresh = !force && existsSync(bin) && statSync(bin).mtimeMs >= statSync(src).mtimeMs
    if (fresh) {
      record({ ok: true, stage: "up-to-date", stderr: "", cc: null, ms: 0 })
    } else {
      const cc = process.env.CC || "cc"
      mkdirSync(outDir, { recursive: true })
      const t0 = Date.now()
      const r = spawnSync(cc, ["-O2", "-pthread", "-Wall", "-o", bin, src], { encoding: "utf8", timeout: 60_000 })
      const ms = Date.now() - t0
      if (r.error !== undefined) {
        record({ ok: false, stage: "compiler", stderr: String(r.error.message), cc, ms })
      } else if (r.status !== 0) {
        record({ ok: false, stage: "compile", stderr: (r.stderr || "").slice(0, 4000), cc, ms })
      } else {
        record({ ok: true, stage: "built", stderr: (r.stderr || "").slice(0, 4000), cc, ms })
      }
    }
  }
} catch (e) {
  record({ ok: false, stage: "script", stderr: String(e && e.message ? e.message : e), cc: null, ms: 0 })
}
process.exit(0)
