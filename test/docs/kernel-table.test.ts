/**
 * docs/design.md §11, "Kernel function → file → test" (issue #15 part 7): the
 * table that tells a reader where each kernel function lives and which test
 * checks it. These tests hold it to the repository: every file it names
 * exists, every test title it names is a test (`it(…)`, `it.effect(…)`, …) of
 * the test file on its row, and every function of the seed's `drm_gpusvm.c`
 * has a row or is listed as not mirrored.
 */
import { assert, describe, it } from "@effect/vitest"
import { existsSync, readFileSync } from "node:fs"
import { join, resolve } from "node:path"

const ROOT = resolve(import.meta.dirname, "..", "..")
const DOC_PATH = join(ROOT, "docs", "design.md")
const DOC = readFileSync(DOC_PATH, "utf8")

/**
 * Every function and iteration macro defined in the seed (Linux 6.17's
 * `drivers/gpu/drm/drm_gpusvm.c` and the inline helpers of
 * `include/drm/drm_gpusvm.h` it uses), the static ones included.
 */
const SEED_FUNCTIONS = [
  "npages_in_range",
  "notifier_iter_first",
  "__drm_gpusvm_notifier_next",
  "drm_gpusvm_init",
  "drm_gpusvm_fini",
  "drm_gpusvm_notifier_invalidate",
  "drm_gpusvm_notifier_find",
  "drm_gpusvm_notifier_insert",
  "drm_gpusvm_notifier_remove",
  "drm_gpusvm_notifier_alloc",
  "drm_gpusvm_notifier_free",
  "drm_gpusvm_notifier_lock",
  "drm_gpusvm_notifier_unlock",
  "drm_gpusvm_notifier_start",
  "drm_gpusvm_notifier_end",
  "drm_gpusvm_notifier_size",
  "drm_gpusvm_for_each_notifier",
  "drm_gpusvm_for_each_notifier_safe",
  "drm_gpusvm_range_find",
  "drm_gpusvm_range_next",
  "drm_gpusvm_for_each_range",
  "drm_gpusvm_for_each_range_safe",
  "drm_gpusvm_range_insert",
  "__drm_gpusvm_range_remove",
  "drm_gpusvm_range_alloc",
  "drm_gpusvm_check_pages",
  "drm_gpusvm_range_chunk_size",
  "drm_gpusvm_find_vma_start",
  "drm_gpusvm_range_find_or_insert",
  "__drm_gpusvm_range_unmap_pages",
  "drm_gpusvm_range_free_pages",
  "drm_gpusvm_range_remove",
  "drm_gpusvm_range_get",
  "drm_gpusvm_range_destroy",
  "drm_gpusvm_range_put",
  "drm_gpusvm_range_pages_valid",
  "drm_gpusvm_range_pages_valid_unlocked",
  "drm_gpusvm_range_get_pages",
  "drm_gpusvm_range_unmap_pages",
  "drm_gpusvm_range_evict",
  "drm_gpusvm_has_mapping",
  "drm_gpusvm_range_set_unmapped",
  "drm_gpusvm_range_start",
  "drm_gpusvm_range_end",
  "drm_gpusvm_range_size",
  "drm_gpusvm_driver_set_lock",
  "drm_gpusvm_driver_lock_held",
  "to_drm_gpusvm_range",
  "to_drm_gpusvm_notifier"
] as const

/** One row of the table: the kernel functions, the source files, the test file and the test title. */
interface Row {
  readonly functions: ReadonlyArray<string>
  readonly files: ReadonlyArray<string>
  readonly testFile: string
  readonly title: string
  readonly line: string
}

const backticked = (cell: string): ReadonlyArray<string> => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!)

/** The section of design.md with the table, up to the next `## ` heading. */
const section = (): string => {
  const parts = DOC.split(/^## 11\. Kernel function → file → test\s*$/m)
  assert.strictEqual(parts.length, 2, "docs/design.md has one section `## 11. Kernel function → file → test`")
  return parts[1]!.split(/^## /m)[0]!
}

/** The rows of the `| kernel function | file | test file | test |` table. */
const rows = (): ReadonlyArray<Row> => {
  const lines = section().split("\n")
  const header = lines.findIndex((l) => /^\|\s*kernel function\s*\|\s*file\s*\|\s*test file\s*\|\s*test\s*\|\s*$/.test(l))
  assert.isAtLeast(header, 0, "the section has a table with the header `| kernel function | file | test file | test |`")
  const out: Array<Row> = []
  for (let i = header + 2; i < lines.length && lines[i]!.startsWith("|"); i++) {
    const line = lines[i]!
    const cells = line.split("|").slice(1, -1).map((c) => c.trim())
    assert.strictEqual(cells.length, 4, `four cells: ${line}`)
    const testFiles = backticked(cells[2]!)
    assert.strictEqual(testFiles.length, 1, `one test file per row: ${line}`)
    out.push({ functions: backticked(cells[0]!), files: backticked(cells[1]!), testFile: testFiles[0]!, title: cells[3]!, line })
  }
  return out
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/** Is `title` the title of a test (`it`, `it.effect`, `it.live`, `test`, … with a string literal) in `source`? */
const hasTest = (source: string, title: string): boolean => {
  const quoted = ["\"", "'", "`"].map((q) => `${q}${escapeRegExp(title)}${q}`).join("|")
  return new RegExp(`\\b(?:it|test)(?:\\.[A-Za-z]+(?:\\([^)]*\\))?)*\\(\\s*(?:${quoted})\\s*,`).test(source)
}

describe("docs/design.md §11 kernel function → file → test (#15 part 7)", () => {
  it("#15 part 7: the table has a row per kernel function, each naming at least one function, one source file, a test file and a test title", () => {
    const table = rows()
    assert.isAtLeast(table.length, 40)
    for (const r of table) {
      assert.isAbove(r.functions.length, 0, `a kernel function: ${r.line}`)
      assert.isAbove(r.files.length, 0, `a source file: ${r.line}`)
      assert.isAbove(r.title.length, 0, `a test title: ${r.line}`)
      for (const f of r.files) assert.match(f, /^src\/.+\.ts$/, `source files are under src/: ${r.line}`)
      assert.match(r.testFile, /^test\/.+\.test\.ts$/, `the test file is a test/…test.ts: ${r.line}`)
    }
  })

  it("#15 part 7: every source file and test file the table names exists", () => {
    const missing = rows().flatMap((r) => [...r.files, r.testFile]).filter((f) => !existsSync(join(ROOT, f)))
    assert.deepStrictEqual([...new Set(missing)], [], `files named in ${DOC_PATH} that do not exist`)
  })

  it("#15 part 7: every test title the table names is a test of the test file on its row", () => {
    const sources = new Map<string, string>()
    const missing: Array<string> = []
    for (const r of rows()) {
      const path = join(ROOT, r.testFile)
      if (!existsSync(path)) continue // reported by the test above
      const source = sources.get(path) ?? readFileSync(path, "utf8")
      sources.set(path, source)
      if (!hasTest(source, r.title)) missing.push(`${r.testFile}: "${r.title}"`)
    }
    assert.deepStrictEqual(missing, [], "test titles of the table that are no test of their file")
  })

  it("#15 part 7: every function of the seed's drm_gpusvm.c has a row, or is listed as not mirrored", () => {
    const text = section()
    const tabled = new Set(rows().flatMap((r) => r.functions))
    const from = text.search(/^Not mirrored/m)
    const notMirrored = from < 0 ? "" : text.slice(from).split("\n\n")[0]!
    const absent = SEED_FUNCTIONS.filter((f) => !tabled.has(f) && !backticked(notMirrored).includes(f))
    assert.deepStrictEqual(absent, [], "seed functions with neither a row nor a not-mirrored entry")
  })

  it("#15 part 7: the title matcher accepts the test call forms the suite uses and rejects a bare string", () => {
    assert.isTrue(hasTest(`it.effect("§5 a title", () => x)`, "§5 a title"))
    assert.isTrue(hasTest(`it("a (b) [c]", () => {`, "a (b) [c]"))
    assert.isTrue(hasTest(`it.live(\n  "x", () => y)`, "x"))
    assert.isFalse(hasTest(`const s = "§5 a title"`, "§5 a title"))
    assert.isFalse(hasTest(`it.effect("§5 a title and more", () => x)`, "§5 a title"))
  })
})
