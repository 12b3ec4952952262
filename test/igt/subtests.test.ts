/**
 * The IGT `xe_exec_system_allocator` subtest table (issue #17 part 4):
 * src/igt/Subtests.ts against numbers derived here independently from the
 * IGT source (da668d6, tests/intel/xe_exec_system_allocator.c): the family
 * prefixes as a product, the vacuous set from the subtest names (not from
 * the flags the table carries), known names, the glob filter, `needs`, and
 * the spawned `gpusvm igt list`.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  allSubtests,
  ESECTIONS,
  FAMILIES,
  globToRegExp,
  IGT_SOURCE,
  matching,
  MSECTIONS,
  needs,
  PAT_SECTIONS,
  PSECTIONS,
  SECTIONS,
  skipReason,
  subtest
} from "../../src/igt/Subtests.ts"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { gpusvm, ROOT, show } from "../cli/support.ts"

// The family prefixes of igt_main, written as a product: 4 single/double runs, 6 `many` variants,
// and 3 parallel kinds × 5 variants (the same five suffixes for threads, shared-VM threads and processes).
const SUFFIXES = ["", "-stride", "-execqueues", "-large", "-large-execqueues"]
const PREFIXES = [
  "once", "once-large", "twice", "twice-large",
  ...["", "-stride", "-execqueues", "-large", "-64k", "-large-execqueues"].map((v) => `many${v}`),
  ...["threads-many", "threads-shared-vm-many", "process-many"].flatMap((k) => SUFFIXES.map((v) => `${k}${v}`))
]
// Standalones: 2 prefetch benchmarks, 5 shared-alloc thread tests, fault, 16 partial, unaligned-alloc,
// 5 fault benchmarks, 2 evict, 2 processes-evict, 12 madvise, 10 pat-index, compute.
const STANDALONES = 2 + 5 + 1 + 16 + 1 + 5 + 2 + 2 + 12 + 10 + 1
// sections[] of the source has 75 rows (malloc … mmap-new-race-nomemset).
const N_SECTIONS = 75

/** Vacuous by the source, decided from the names: threads skip -file / -fork-read, processes skip -fork-read, … */
const vacuousByName = (family: string, section: string): boolean => {
  const small = !/large|64k/.test(family) // bo_size 0
  const threads = family.startsWith("threads-")
  const proc = family.startsWith("process-")
  if (threads && (section.includes("fork-read") || section.includes("-file"))) return true
  if (proc && section.includes("fork-read")) return true
  if (section === "malloc-multi-fault" && small) return true
  if (section.endsWith("-eocheck") && (family === "once" || family === "once-large")) return true // n_execs 1 is odd
  return false
}

describe("IGT xe_exec_system_allocator subtests (#17 part 4)", () => {
  it("#17 part 4: 1,932 subtests = 25 families × 75 sections + 57 standalones, names unique", () => {
    const all = allSubtests()
    assert.strictEqual(PREFIXES.length, 25)
    assert.strictEqual(SECTIONS.length, N_SECTIONS)
    assert.strictEqual(STANDALONES, 57)
    assert.strictEqual(all.length, PREFIXES.length * N_SECTIONS + STANDALONES)
    assert.strictEqual(all.length, 1932)
    assert.strictEqual(new Set(all.map((t) => t.name)).size, all.length, "names are unique")
    assert.deepStrictEqual(all.map((t) => t.index), all.map((_, i) => i))
    assert.deepStrictEqual(FAMILIES.map((f) => f.prefix), PREFIXES, "the family loops in source order")
    assert.strictEqual(PSECTIONS.length + ESECTIONS.length * 2 + MSECTIONS.length + PAT_SECTIONS.length, 16 + 4 + 12 + 10)
  })

  it("#17 part 4: IGT's order: for each section the 25 families, then the standalones; every family has 75", () => {
    const all = allSubtests()
    const expected = SECTIONS.flatMap((sec) => PREFIXES.map((p) => `${p}-${sec.name}`))
    assert.deepStrictEqual(all.slice(0, expected.length).map((t) => t.name), expected)
    const perFamily = new Map<string, number>()
    for (const t of all) perFamily.set(t.family, (perFamily.get(t.family) ?? 0) + 1)
    for (const p of PREFIXES) assert.strictEqual(perFamily.get(p), N_SECTIONS, p)
    assert.strictEqual(perFamily.get("partial"), 16)
    assert.strictEqual(perFamily.get("madvise"), 12)
    assert.strictEqual(perFamily.get("pat-index"), 10)
    assert.strictEqual(perFamily.get("evict"), 2)
    assert.strictEqual(perFamily.get("processes-evict"), 2)
    const standalone = all.filter((t) => t.kind === "standalone")
    assert.strictEqual(standalone.length, 57)
    assert.deepStrictEqual(standalone.slice(0, 8).map((t) => t.name), [
      "prefetch-benchmark", "prefetch-sys-benchmark",
      "threads-shared-vm-shared-alloc-many-stride-malloc", "threads-shared-vm-shared-alloc-many-stride-malloc-race",
      "threads-shared-alloc-many-stride-malloc", "threads-shared-alloc-many-stride-malloc-sync",
      "threads-shared-alloc-many-stride-malloc-race", "fault"
    ])
    assert.strictEqual(all.at(-1)!.name, "compute")
  })

  it("#17 part 4: known names exist with their family, section and flags", () => {
    const known: ReadonlyArray<[string, string, string | undefined]> = [
      ["once-malloc", "once", "malloc"],
      ["twice-mmap-huge", "twice", "mmap-huge"],
      ["threads-many-malloc", "threads-many", "malloc"],
      ["process-many-malloc", "process-many", "malloc"],
      ["many-64k-mmap-remap-ro-dontunmap-eocheck", "many-64k", "mmap-remap-ro-dontunmap-eocheck"],
      ["threads-shared-vm-many-large-execqueues-new-bo-map-nomemset", "threads-shared-vm-many-large-execqueues", "new-bo-map-nomemset"],
      ["evict-malloc", "evict", "malloc"],
      ["evict-malloc-mix-bo", "evict", "malloc-mix-bo"],
      ["processes-evict-malloc", "processes-evict", "malloc"],
      ["partial-atomic-middle-remap-no-cpu-fault", "partial", "atomic-middle-remap-no-cpu-fault"],
      ["madvise-no-range-invalidate-same-attr", "madvise", "no-range-invalidate-same-attr"],
      ["pat-index-madvise-max-pat-index-multi-vma", "pat-index", "madvise-max-pat-index-multi-vma"],
      ["fault", "fault", undefined],
      ["unaligned-alloc", "unaligned-alloc", undefined]
    ]
    for (const [name, family, section] of known) {
      const t = subtest(name)
      assert.isDefined(t, name)
      assert.strictEqual(t!.family, family, name)
      assert.strictEqual(t!.section, section, name)
    }
    assert.deepStrictEqual(subtest("mmap-shared-remap-dontunmap-eocheck" as string), undefined)
    assert.deepStrictEqual(subtest("once-mmap-shared")!.flags, ["MMAP", "LOCK", "MMAP_SHARED"])
    assert.deepStrictEqual(subtest("fault")!.call, { fn: "test_exec", nExecQueues: 4, nExecs: 1, boSize: 0x200000, stride: 0 })
    assert.deepStrictEqual(subtest("threads-shared-vm-many-stride-mmap")!.call, {
      fn: "threads", nExecQueues: 1, nExecs: 128, boSize: 0, stride: 256, sharedVm: true
    })
    assert.strictEqual(subtest("pat-index-madvise-pat-idx-uc-comp-single-vma")!.call.fn, "test_exec")
  })

  it("#17 part 4: 96 subtests are vacuous (IGT returns at once), exactly those the source's early returns imply", () => {
    const all = allSubtests()
    const vacuous = all.filter((t) => t.vacuous !== undefined).map((t) => t.name)
    const expected = all.filter((t) => t.kind === "matrix" && vacuousByName(t.family, t.section!)).map((t) => t.name)
    assert.deepStrictEqual(vacuous, expected)
    assert.strictEqual(vacuous.length, 96)
    assert.strictEqual(all.length - vacuous.length, 1836)
    assert.match(subtest("once-mmap-remap-eocheck")!.vacuous!, /EVERY_OTHER_CHECK/)
    assert.match(subtest("threads-many-mmap-file")!.vacuous!, /FILE_BACKED/)
    assert.match(subtest("process-many-malloc-fork-read")!.vacuous!, /FORK_READ/)
    assert.match(subtest("many-malloc-multi-fault")!.vacuous!, /MULTI_FAULT/)
    assert.isUndefined(subtest("many-large-malloc-multi-fault")!.vacuous)
    assert.isUndefined(subtest("twice-mmap-remap-eocheck")!.vacuous)
    assert.isUndefined(subtest("process-many-mmap-file")!.vacuous, "processes() does not return for FILE_BACKED")
    assert.isUndefined(subtest("once-malloc-fork-read")!.vacuous, "test_exec forks for FORK_READ")
  })

  it("#17 part 4: the glob filter: * ? [..] anchored, other characters literal", () => {
    assert.strictEqual(matching("once-*").length, 2 * N_SECTIONS)
    assert.isTrue(matching("once-*").every((t) => t.name.startsWith("once-")))
    assert.deepStrictEqual(matching("fault").map((t) => t.name), ["fault"])
    assert.deepStrictEqual(matching("evict-*").map((t) => t.name), ["evict-malloc", "evict-malloc-mix-bo"])
    assert.strictEqual(matching("*-malloc").length, 25 + 2 + 1 + 1, "the 25 families' -malloc, 2 shared-alloc, evict-, processes-evict-")
    assert.deepStrictEqual(matching("partial-[mr][ue]*-cpu-fault").map((t) => t.name), [
      "partial-munmap-cpu-fault", "partial-munmap-no-cpu-fault", "partial-remap-cpu-fault", "partial-remap-no-cpu-fault"
    ])
    assert.deepStrictEqual(matching("twic?-mmap").map((t) => t.name), ["twice-mmap"])
    assert.strictEqual(matching("[!o]nce-malloc").length, 0)
    assert.strictEqual(matching("*").length, 1932)
    assert.strictEqual(matching().length, 1932)
    assert.isFalse(globToRegExp("a.b").test("axb"), ". is literal")
    assert.isTrue(globToRegExp("a.b").test("a.b"))
    assert.isFalse(globToRegExp("once").test("once-malloc"), "anchored")
  })

  it("#17 part 5: needs: only compute lacks something; BO_MAP / MIX_BO_ALLOC need a BO CPU mapping (provided); fork, processes, VMs, madvise, BOs exist", () => {
    const sources = (name: string) => needs(subtest(name)!).map((n) => n.source)
    for (const name of [
      "process-many-malloc", "threads-many-malloc", "threads-shared-vm-many-malloc", "once-malloc", "once-malloc-mlock",
      "once-malloc-fork-read", "once-mmap-remap-madvise", "once-malloc-bo-unmap", "many-new-busy", "madvise-split-vma",
      "processes-evict-malloc", "fault-process-benchmark", "partial-remap-cpu-fault", "pat-index-madvise-pat-idx-wb-multi-vma"
    ]) {
      assert.deepStrictEqual(sources(name), ["#17 part 3"], name)
      assert.isUndefined(skipReason(subtest(name)!), name)
    }
    assert.deepStrictEqual(sources("once-new-bo-map"), ["bo-cpu-map", "#17 part 3"])
    assert.deepStrictEqual(sources("evict-malloc-mix-bo"), ["bo-cpu-map", "#17 part 3"])
    assert.deepStrictEqual(sources("processes-evict-malloc-mix-bo"), ["bo-cpu-map", "#17 part 3"])
    assert.deepStrictEqual(sources("compute"), ["outside"])
    for (const name of ["once-new-bo-map", "evict-malloc-mix-bo", "processes-evict-malloc-mix-bo"]) assert.isUndefined(skipReason(subtest(name)!), name)
    assert.match(skipReason(subtest("compute")!)!, /compute kernel/)
    const skipped = allSubtests().filter((t) => skipReason(t) !== undefined).map((t) => t.name)
    assert.deepStrictEqual(skipped, ["compute"])
    assert.strictEqual(allSubtests().filter((t) => needs(t).some((n) => n.source === "bo-cpu-map")).length, 52, "50 new-bo-map(-nomemset), 2 *-evict-malloc-mix-bo")
    for (const t of allSubtests()) {
      if (t.vacuous !== undefined) {
        assert.deepStrictEqual(needs(t), [], t.name)
        assert.isUndefined(skipReason(t), t.name)
      }
    }
  })
})

describe("docs/igt.md (#17 part 4)", () => {
  it("#17 part 4: docs/igt.md names the IGT commit read and the table's counts (total, vacuous, needs per source)", () => {
    const doc = readFileSync(join(ROOT, "docs", "igt.md"), "utf8")
    assert.include(doc, IGT_SOURCE.commit)
    assert.include(doc, IGT_SOURCE.path)
    const live = allSubtests().filter((t) => t.vacuous === undefined)
    const count = (source: string) => live.filter((t) => needs(t).some((n) => n.source === source)).length
    const fmt = (n: number) => n.toLocaleString("en-US")
    assert.include(doc, `**${fmt(allSubtests().length)}** subtests`)
    assert.include(doc, `${allSubtests().length - live.length} subtests do nothing in IGT`)
    assert.include(doc, `That leaves ${fmt(live.length)} subtests`)
    for (const [source, label] of [["bo-cpu-map", "| bo-cpu-map |"], ["outside", "| outside |"], ["#17 part 3", "| #17 part 3 |"]]) {
      assert.include(doc, `${label} ${fmt(count(source!))} |`, source)
    }
    const onlyExec = live.filter((t) => needs(t).every((n) => n.source === "#17 part 3")).length
    assert.include(doc, `${onlyExec} subtests need nothing but the exec model`)
  })
})

describe("gpusvm igt list (spawned, #17 part 4)", () => {
  it.concurrent("#17 part 4: gpusvm igt list --filter 'once-*' prints the 150 once-/once-large- names, one a line, in IGT's order", async () => {
    const r = await gpusvm(["igt", "list", "--filter", "once-*"])
    assert.strictEqual(r.status, 0, show(r))
    const lines = r.stdout.trimEnd().split("\n")
    assert.strictEqual(lines.length, 150, show(r))
    assert.deepStrictEqual(lines.slice(0, 4), ["once-malloc", "once-large-malloc", "once-malloc-madvise", "once-large-malloc-madvise"])
    assert.strictEqual(r.stderr, "")
  }, 60_000)

  it.concurrent("#17 part 4: gpusvm igt list prints 1,932 names; a filter matching nothing is bad input (exit 2)", async () => {
    const [all, none] = await Promise.all([gpusvm(["igt", "list"]), gpusvm(["igt", "list", "--filter", "no-such-*"])])
    assert.strictEqual(all.status, 0, show(all))
    assert.strictEqual(all.stdout.trimEnd().split("\n").length, 1932)
    assert.strictEqual(none.status, 2, show(none))
    assert.strictEqual(none.stdout, "")
    assert.match(none.stderr, /no subtest matches/)
  }, 60_000)
})
