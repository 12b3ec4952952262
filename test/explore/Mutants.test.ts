/**
 * The CI-sized slice of `npm run mutants` (issue #12, mutation self-check):
 * two deliberate bugs — get_pages ignoring a moved notifier sequence (needs a
 * preemption to show) and the invalidation callback keeping DMA mappings —
 * applied to a scratch copy, each found by `gpusvm explore` on a built-in
 * config. The whole table runs with `npm run mutants`.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { join } from "node:path"
import { ROOT } from "../cli/support.ts"

describe("npm run mutants, CI slice (issue #12)", () => {
  it("every mutant's mutation site is still in the code, exactly once", () => {
    const r = spawnSync(process.execPath, [join(ROOT, "scripts", "mutants.ts"), "--sites"], { cwd: ROOT, encoding: "utf8", timeout: 60_000 })
    assert.strictEqual(r.status, 0, `${r.stdout}\n${r.stderr}`)
    assert.match(r.stdout, /(\d+) of \1 mutation sites present/)
  })

  it("get-pages-ignores-seq and invalidate-keeps-dma are both found by the explorer", () => {
    const r = spawnSync(process.execPath, [join(ROOT, "scripts", "mutants.ts"), "--only", "get-pages-ignores-seq,invalidate-keeps-dma", "--time", "60"], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 240_000
    })
    assert.strictEqual(r.status, 0, `${r.stdout}\n${r.stderr}`)
    assert.include(r.stdout, "2 of 2 mutants found")
    assert.match(r.stdout, /\| get-pages-ignores-seq \|[^\n]*\| yes \|[^\n]*1 preemptions/)
    assert.match(r.stdout, /\| invalidate-keeps-dma \|[^\n]*\| yes \|/)
  }, 240_000)
})
