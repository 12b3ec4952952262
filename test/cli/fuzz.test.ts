/**
 * The fuzz test of issue #18: 240 malformed scenario files, made by
 * hand-written mutators from the valid built-in files in `scenarios/` with a
 * fixed seed (the same files every run), each run through the real CLI in
 * batches (`gpusvm simulate F1 … F60`, two at a time: every bad file of a command line is
 * reported, nothing runs). Each batch must exit 2 with nothing on stdout, no
 * stack trace, within 10 s; each file must get one stderr line per problem —
 * as many as the in-process decoder finds — naming the file and a JSON path.
 */
import { assert, describe, it } from "@effect/vitest"
import { Exit } from "effect"
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import { mulberry32 } from "../../src/domain/Prng.ts"
import { decodeScenarioText } from "../../src/domain/Scenario.ts"
import { gpusvm, SCENARIOS, show, tempDir } from "./support.ts"

const SEED = 0x18_2026
const FILES = 240
const BATCH = 60
/** Batches run at once (the machine has 2 cores). */
const PARALLEL = 2

const rand = mulberry32(SEED)
const pick = <A>(xs: ReadonlyArray<A>): A => xs[Math.floor(rand() * xs.length)]!

type Json = null | boolean | number | string | Array<Json> | { [k: string]: Json }
const clone = (j: Json): Json => JSON.parse(JSON.stringify(j))

/** Every object or array inside `j` with its path, the root included. */
const containers = (j: Json, out: Array<Json> = []): Array<Json> => {
  if (j !== null && typeof j === "object") {
    out.push(j)
    for (const v of Array.isArray(j) ? j : Object.values(j)) containers(v, out)
  }
  return out
}
const objects = (j: Json) => containers(j).filter((c): c is { [k: string]: Json } => c !== null && !Array.isArray(c))
const steps = (j: Json) => objects(j).filter((o) => typeof o["op"] === "string")

const BAD_VALUES: ReadonlyArray<Json> = [-1, -4096, 2.5, "2.5K", "abc", "0x", "", 2 ** 60, "1P", null, true, [], {}, [1, [2]], 5000, "4097", "-0x10", 1e308]
const BAD_OPS = ["frobnicate", "MMAP", "mmap ", "", "expect-error"]

/** The mutators: each changes a parsed valid file (or its text) into, usually, an invalid one. */
const MUTATORS: ReadonlyArray<readonly [string, (j: Json, text: string) => Json | string | Uint8Array]> = [
  ["drop a key", (j) => {
    const o = pick(objects(j))
    const k = pick(Object.keys(o))
    if (k !== undefined) delete o[k]
    return j
  }],
  ["bad value", (j) => {
    const o = pick(objects(j))
    const k = pick(Object.keys(o))
    if (k !== undefined) o[k] = clone(pick(BAD_VALUES))
    return j
  }],
  ["unknown key", (j) => {
    pick(objects(j))[pick(["chunkSize", "lenght", "__proto__x", "Op", "extra"])] = 1
    return j
  }],
  ["unknown op", (j) => {
    const s = steps(j)
    if (s.length > 0) pick(s)["op"] = pick(BAD_OPS)
    return j
  }],
  ["unknown buffer", (j) => {
    const s = steps(j).filter((x) => "buf" in x)
    if (s.length > 0) pick(s)["buf"] = pick(["nope", "A", " a"])
    return j
  }],
  ["steps of a wrong type", (j) => {
    const o = j as { [k: string]: Json }
    if ("steps" in o) o["steps"] = pick<Json>([{}, "steps", 7, [1, 2], [null]])
    else o["threads"] = pick<Json>([[], {}, [{}], [{ steps: 1 }]])
    return j
  }],
  ["truncated text", (_j, text) => text.slice(0, 1 + Math.floor(rand() * (text.length - 2)))],
  ["binary bytes", (_j, text) => {
    const bytes = new TextEncoder().encode(text)
    for (let i = 0; i < 8; i++) bytes[Math.floor(rand() * bytes.length)] = pick([0, 0xff, 0xc3, 0x1b, 0x07, 0x80])
    return bytes
  }],
  ["a second mmap of a live name", (j) => {
    const s = steps(j).filter((x) => x["op"] === "mmap")
    const o = j as { [k: string]: Json }
    const list = (Array.isArray(o["steps"]) ? o["steps"] : ((o["threads"] as Array<{ steps: Array<Json> }> | undefined)?.[0]?.steps)) as Array<Json> | undefined
    if (s.length > 0 && list !== undefined) list.push(clone(pick(s)))
    return j
  }],
  ["unknown expect-error tag", (j) => {
    const s = steps(j)
    const t = s.find((x) => x["op"] === "expect-error")
    if (t !== undefined) t["tag"] = pick(["EFAULT", "GpuFault", "badaddress", "Defect"])
    else if (s.length > 0) pick(s)["tag"] = "X"
    return j
  }],
  ["bad svm / machine block", (j) => {
    const o = j as { [k: string]: Json }
    if (rand() < 0.5) o["svm"] = { [pick(["notifierSize", "chunkSizes", "gpuvaStart", "gpuvaEnd", "kernel", "onSplitVma"])]: pick<Json>([3, 2 ** 60, ["64K", "2M"], "6.1", "3K", 0, "never"]) }
    else o["machine"] = { [pick(["vramBytes", "inject", "schedule"])]: pick<Json>([1000, -1, { seed: -1 }, { hmmBusy: "x" }, "1.5M"]) }
    return j
  }],
  ["bad name", (j) => {
    ;(j as { [k: string]: Json })["name"] = pick<Json>(["Bad Name", "", "x/y", 7, "ÿ\u0000"])
    return j
  }],
  ["not an object", () => pick<Json>([[], "scenario", 42, null, [{ name: "x" }]])],
  ["deep nesting", (j) => {
    const s = steps(j)
    if (s.length > 0) {
      let deep: Json = { op: "barrier", name: "x" }
      for (let i = 0; i < 40; i++) deep = { op: "expect-error", step: deep, tag: "BadAddress" }
      pick(s)["step"] = deep
      pick(s)["op"] = "expect-error"
    }
    return j
  }]
]

const BASES = readdirSync(SCENARIOS).filter((f) => f.endsWith(".json")).sort().map((f) => readFileSync(join(SCENARIOS, f), "utf8"))

interface Case {
  readonly path: string
  readonly mutator: string
  /** The problems the in-process decoder reports (lines after the file name). */
  readonly expected: number
}

const tmp = tempDir("gpusvm-fuzz-")
afterAll(() => process.env.FUZZ_KEEP ? undefined : tmp.remove())

/** Makes the files: a mutation that left a file valid is drawn again. */
const cases: Array<Case> = []
for (let i = 0; cases.length < FILES && i < FILES * 20; i++) {
  const [mutator, mutate] = pick(MUTATORS)
  const text = pick(BASES)
  const out = mutate(JSON.parse(text) as Json, text)
  const bytes = out instanceof Uint8Array ? out : new TextEncoder().encode(typeof out === "string" ? out : JSON.stringify(out, null, 1))
  const path = join(tmp.dir, `fuzz-${String(cases.length).padStart(3, "0")}.json`)
  let decoded: string | undefined
  try {
    decoded = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(bytes[0] === 0xef ? 3 : 0))
  } catch {
    decoded = undefined
  }
  let expected = 1 // binary input: one line
  if (decoded !== undefined && !decoded.includes("\u0000")) {
    const exit = decodeScenarioText(decoded, path)
    if (Exit.isSuccess(exit)) continue // still valid: draw again
    const r = exit.cause.reasons[0]
    expected = r?._tag === "Fail" ? r.error.lines.length : 1
  }
  writeFileSync(path, bytes)
  cases.push({ path, mutator, expected })
}

const LINE = /^gpusvm: (\S+\.json): (<root>|[A-Za-z_$][\w$-]*(?:\[\d+\]|\.[A-Za-z_$][\w$-]*|\["[^"]*"\])*|\[\d+\](?:\[\d+\]|\.[A-Za-z_$][\w$-]*)*): \S.*$/

describe("#18 fuzz: malformed scenario files through the real CLI (spawned)", () => {
  it(`§11 ${FILES} mutated files (seed ${SEED}): exit 2, one line per error naming the file and JSON path, no stack trace, no run over 10 s`, async () => {
    assert.strictEqual(cases.length, FILES, "enough invalid mutations")
    const batches: Array<ReadonlyArray<Case>> = []
    for (let i = 0; i < cases.length; i += BATCH) batches.push(cases.slice(i, i + BATCH))
    const runs: Array<readonly [ReadonlyArray<Case>, Awaited<ReturnType<typeof gpusvm>>]> = []
    for (let i = 0; i < batches.length; i += PARALLEL) {
      runs.push(...await Promise.all(batches.slice(i, i + PARALLEL).map((b) => gpusvm(["simulate", "--json", ...b.map((c) => c.path)], 20_000).then((r) => [b, r] as const))))
    }
    for (const [batch, r] of runs) {
      assert.strictEqual(r.status, 2, show(r))
      assert.strictEqual(r.stdout, "", show(r))
      assert.isBelow(r.ms, 10_000, `a batch of ${batch.length} files took ${Math.round(r.ms)} ms`)
      assert.notMatch(r.stderr, /^\s+at |Error: .*\n\s+at /m, `no stack trace\n${show(r)}`)
      const lines = r.stderr.trimEnd().split("\n")
      for (const l of lines) assert.match(l, LINE, `a line that names no file and JSON path: ${l}`)
      for (const c of batch) {
        const mine = lines.filter((l) => l.startsWith(`gpusvm: ${c.path}: `))
        assert.strictEqual(mine.length, c.expected, `${c.path} (${c.mutator}): ${c.expected} problems expected, got\n${mine.join("\n")}`)
      }
    }
  }, 60_000)
})
