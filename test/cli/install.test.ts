/**
 * A fresh clone's first `npm install` (issue #18): on the system Node (20 here,
 * below the engines of this package and of its dependencies) it prints no
 * EBADENGINE warning — the committed `.npmrc` says why — and it leaves the
 * committed package-lock.json as it is (the lockfile is committed as npm
 * writes it). Cheap: `npm install --dry-run` and `--package-lock-only` in a
 * temp copy of the manifest, lockfile and `.npmrc`, from npm's cache
 * (`--prefer-offline`, scripts off); skipped, with the reason, when npm is not
 * on PATH or cannot resolve the packages without the network.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { copyFileSync, readFileSync } from "node:fs"
import { delimiter, join } from "node:path"
import { afterAll } from "vitest"
import { ROOT, tempDir } from "./support.ts"

const tmp = tempDir("gpusvm-install-")
afterAll(() => tmp.remove())
for (const f of ["package.json", "package-lock.json", ".npmrc"]) copyFileSync(join(ROOT, f), join(tmp.dir, f))

// The system npm and Node, as a user's first `npm install` runs them: without the
// node_modules/.bin that `npx vitest` puts first on PATH (its `node` is the pinned Node 22).
const PATH = (process.env.PATH ?? "").split(delimiter).filter((p) => !p.includes("node_modules")).join(delimiter)
// and without the npm_* settings an enclosing `npm test` passes down (they would override .npmrc)
const ENV = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k))), PATH, NO_COLOR: "1" }
const npm = (args: ReadonlyArray<string>, cwd = tmp.dir) =>
  spawnSync("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", ...args], {
    cwd,
    env: ENV,
    encoding: "utf8",
    timeout: 60_000
  })
const systemNode = spawnSync("node", ["--version"], { env: ENV, encoding: "utf8" })
const first = systemNode.error === undefined ? npm(["--dry-run"]) : undefined
const unavailable = first === undefined
  ? "no system node/npm on PATH"
  : first.error !== undefined
  ? `npm cannot run: ${first.error.message}`
  : first.status !== 0 && /ENOTCACHED|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|network/i.test(first.stderr)
  ? "npm cannot resolve the packages offline (not in its cache)"
  : undefined

describe("npm install on a fresh clone (#18)", () => {
  it.skipIf(unavailable !== undefined)(`the first npm install prints no EBADENGINE warning (system Node ${systemNode.stdout?.trim()})${unavailable === undefined ? "" : ` — skipped: ${unavailable}`}`, () => {
    assert.strictEqual(first!.status, 0, first!.stderr)
    const out = first!.stdout + first!.stderr
    assert.notInclude(out, "EBADENGINE", out)
    assert.notMatch(out, /npm warn/i, out)
    // the test can fail: without the committed .npmrc, an older system Node warns
    const major = Number(/^v(\d+)/.exec(systemNode.stdout)?.[1])
    if (major < 22) {
      const bare = tempDir("gpusvm-install-bare-")
      try {
        for (const f of ["package.json", "package-lock.json"]) copyFileSync(join(ROOT, f), join(bare.dir, f))
        const r = npm(["--dry-run"], bare.dir)
        assert.include(r.stdout + r.stderr, "EBADENGINE", "without .npmrc, Node < 22 should warn (else this test proves nothing)")
      } finally {
        bare.remove()
      }
    }
  })

  it.skipIf(unavailable !== undefined)("the lockfile npm writes is the committed one (no hasInstallScript rewrite)", () => {
    const r = npm(["--package-lock-only"])
    assert.strictEqual(r.status, 0, r.stderr)
    assert.strictEqual(readFileSync(join(tmp.dir, "package-lock.json"), "utf8"), readFileSync(join(ROOT, "package-lock.json"), "utf8"))
  })
})
