/**
 * Hostile input and rough edges of the `gpusvm` command (issue #18), as a user
 * meets them: each bullet a spawned run (`src/cli/main.ts`, with a timeout)
 * that ends with a typed message naming the path — exit 2 for bad input, 0/1
 * for a run — never a hang, a stack trace or help text on a parse error.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawn, spawnSync } from "node:child_process"
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import { EXPECTABLE_ERROR_TAGS } from "../../src/domain/Scenario.ts"
import { MMU_EVENTS } from "../../src/domain/MmuRange.ts"
import { decodeScenarioResult, type ScenarioResult } from "../../src/domain/ScenarioResult.ts"
import { gpusvm, MAIN, ROOT, SCENARIOS, show, tempDir } from "./support.ts"

const tmp = tempDir("gpusvm-hostile-")
afterAll(() => tmp.remove())
const file = (name: string, json: string | object | Uint8Array) =>
  json instanceof Uint8Array ? (writeFileSync(join(tmp.dir, name), json), join(tmp.dir, name)) : tmp.write(name, json)
const MMAP_A = { op: "mmap", as: "a", length: "64K" }

/** `simulate ARGS --json`: exit 2, nothing on stdout, one stderr line per expected fragment set; returns the lines. */
const rejects = async (args: ReadonlyArray<string>, ...fragments: ReadonlyArray<string>) => {
  const r = await gpusvm(["simulate", ...args, "--json"], 45_000)
  assert.strictEqual(r.status, 2, show(r))
  assert.strictEqual(r.stdout, "", `nothing may run on bad input\n${show(r)}`)
  const lines = r.stderr.trim().split("\n")
  assert.strictEqual(lines.length, 1, `expected a one-line message\n${show(r)}`)
  for (const f of fragments) assert.include(lines[0]!, f, show(r))
  assert.notMatch(r.stderr, /\n\s+at /, `no stack trace\n${show(r)}`)
  return lines[0]!
}

const results = (stdout: string): Array<ScenarioResult> =>
  stdout.trim().split("\n").map((l) => {
    const exit = decodeScenarioResult(JSON.parse(l))
    assert.isTrue(exit._tag === "Success", `a --json line does not decode: ${l.slice(0, 300)}`)
    return (exit as { value: ScenarioResult }).value
  })

/** Whether this host runs the native machine (probed once). */
const nativeProbe = spawnSync(process.execPath, [MAIN, "simulate", "--machine", "native", "--json", join(SCENARIOS, "approx-once-malloc.json")], {
  cwd: ROOT,
  encoding: "utf8",
  timeout: 60_000
})
const noNative = nativeProbe.status === 2 ? nativeProbe.stderr.trim() : nativeProbe.status === null ? "the native probe timed out" : undefined

describe.concurrent("#18 silently accepted / wrong exit: now bad input (spawned)", { timeout: 90_000 }, () => {
  it("§11.16 expect-error with an unknown tag: exit 2 at steps[N].tag, listing every known tag", async () => {
    const f = file("tag.json", { name: "tag", steps: [MMAP_A, { op: "expect-error", step: { op: "gpu-read", buf: "a", expect: 1 }, tag: "GpuFault" }] })
    const line = await rejects([f], f, "steps[1].tag", `unknown error tag "GpuFault"`)
    for (const t of EXPECTABLE_ERROR_TAGS) assert.include(line, t)
  })
  it("§3 a second mmap with the same `as` in one thread: exit 2 naming both steps", async () => {
    const f = file("dup.json", { name: "dup", steps: [MMAP_A, { op: "cpu-write", buf: "a", pattern: 1 }, MMAP_A] })
    await rejects([f], f, "steps[2].as", "steps[0] (mmap)", "steps[2] (mmap)")
  })
  it("§3 an mremap whose `as` names a live buffer: exit 2 naming both steps", async () => {
    const f = file("mremap.json", { name: "mremap", steps: [MMAP_A, { op: "mmap", as: "b", length: "4K" }, { op: "mremap", buf: "a", newLength: "128K", as: "b" }] })
    await rejects([f], f, "steps[2].as", "steps[1] (mmap)", "steps[2] (mremap)")
  })
  it("§9 machine.vramBytes that is not a page multiple: exit 2", async () => {
    const f = file("vram.json", { name: "vram", machine: { vramBytes: 1000 }, steps: [] })
    await rejects([f], f, "machine.vramBytes", "multiple of 4096")
  })
  it("§3.2 prefetch after exit fails like every other op after exit (GpuFaultError, cause BadAddress)", async () => {
    const after = (tag: string, to: string) => ({ op: "expect-error", step: { op: "prefetch", buf: "a", to }, tag })
    const f = file("prefetch-exit.json", {
      name: "prefetch-exit",
      steps: [MMAP_A, { op: "cpu-write", buf: "a", pattern: 1 }, { op: "exit" }, after("GpuFaultError", "vram"), after("BadAddress", "system"), {
        op: "expect-error",
        step: { op: "gpu-fault", buf: "a" },
        tag: "BadAddress"
      }]
    })
    const r = await gpusvm(["simulate", f, "--json"])
    assert.strictEqual(r.status, 0, show(r))
    const [res] = results(r.stdout)
    assert.deepStrictEqual(res!.failures, [])
  })
})

describe.concurrent("#18 untyped defects: huge accesses are refused before anything runs (spawned)", { timeout: 90_000 }, () => {
  it("a whole-buffer cpu-write of 1 TiB: exit 2 at steps[1] naming the figure, in well under the budget", async () => {
    const f = file("tib.json", { name: "tib", steps: [{ op: "mmap", as: "a", length: "1T" }, { op: "cpu-write", buf: "a", pattern: 1 }] })
    await rejects([f], f, "steps[1]", "access of 1T exceeds the 16G")
  })
  it("two 12 GiB buffers written: exit 2 at the write that passes the machine's 16 GiB", async () => {
    const f = file("two.json", {
      name: "two",
      steps: [
        { op: "mmap", as: "a", length: "12G" },
        { op: "mmap", as: "b", length: "12G" },
        { op: "cpu-write", buf: "a", length: "4K", pattern: 1 },
        { op: "gpu-write", buf: "b", length: "4K", pattern: 2 }
      ]
    })
    await rejects([f], f, "steps[3]", "hold 24G, more than the 16G")
  })
})

describe.concurrent("#18 misleading messages (spawned)", { timeout: 90_000 }, () => {
  it("a directory, a FIFO, a symlink loop and /dev/null say what they are", async () => {
    const dir = join(tmp.dir, "a-dir")
    mkdirSync(dir)
    const fifo = join(tmp.dir, "a-fifo")
    const mk = spawnSync("mkfifo", [fifo])
    const loop = join(tmp.dir, "loop")
    symlinkSync(join(tmp.dir, "loop2"), loop)
    symlinkSync(loop, join(tmp.dir, "loop2"))
    // one process, four bad words: each is one line saying what it is (a FIFO is never opened, so nothing blocks)
    const r = await gpusvm(["simulate", dir, ...(mk.status === 0 ? [fifo] : []), loop, "/dev/null", "--json"], 20_000)
    assert.strictEqual(r.status, 2, show(r))
    assert.strictEqual(r.stdout, "", show(r))
    const lines = r.stderr.trim().split("\n")
    assert.strictEqual(lines.length, mk.status === 0 ? 4 : 3, show(r))
    const line = (p: string) => lines.find((l) => l.startsWith(`gpusvm: ${p}: `)) ?? assert.fail(`no line for ${p}\n${show(r)}`)
    assert.include(line(dir), "is a directory")
    if (mk.status === 0) assert.include(line(fifo), "not a regular file (a FIFO)")
    assert.include(line(loop), "too many symbolic links")
    assert.include(line("/dev/null"), "not a regular file (a character device)")
  })
  it("binary input is a short escaped excerpt, never echoed raw", async () => {
    const bytes = new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0, 0x1b, 0x5b, 0x32, 0x4a, ...Array(200).fill(0xff)])
    const f = file("binary.bin", bytes)
    const line = await rejects([f], f, "<root>", "binary", String.raw`\x7fELF\x02`)
    assert.notMatch(line, /[\x00-\x08\x0e-\x1f\x7f]/, "no raw control bytes")
    assert.isBelow(line.length, 300)
    // JSON-looking text with control characters: the parser's excerpt is escaped too
    const g = file("ctrl.json", `{ "name": "x\u001b[2J\u0007", `)
    const l2 = await rejects([g], g, "<root>", "invalid JSON")
    assert.notMatch(l2, /[\x00-\x08\x0e-\x1f\x7f]/, "no raw control bytes")
  })
  it("a UTF-8 BOM is accepted", async () => {
    const f = file("bom.json", `\uFEFF${JSON.stringify({ name: "bom", steps: [MMAP_A, { op: "cpu-read", buf: "a", expect: "zero" }] })}`)
    const r = await gpusvm(["simulate", f, "--json"])
    assert.strictEqual(r.status, 0, show(r))
    assert.strictEqual(results(r.stdout)[0]!.scenario, "bom")
  })
  it("§2 svm.notifierSize 2**60 says it must be a power of two ≤ 2^52", async () => {
    const f = file("notifier.json", `{ "name": "notifier", "svm": { "notifierSize": ${2 ** 60} }, "steps": [] }`)
    await rejects([f], f, "svm.notifierSize", "power of two ≤ 2^52")
  })
  it("every problem of a file is one line naming its JSON path", async () => {
    const f = file("many.json", { name: "many", steps: [{ op: "mmap", as: "a", length: 5 }, { op: "frob" }] })
    const r = await gpusvm(["simulate", f])
    assert.strictEqual(r.status, 2, show(r))
    const lines = r.stderr.trim().split("\n")
    assert.deepStrictEqual(lines.map((l) => l.split(": ")[2]), ["steps[0].length", "steps[1].op"], show(r))
  })
})

describe.concurrent("#18 CLI polish (spawned)", { timeout: 90_000 }, () => {
  it("a command-line parse error prints one line on stderr, nothing on stdout, exit 2", async () => {
    const runs = await Promise.all([["simulate", "--no-such-flag"], ["simulate", "--seed"], ["frobnicate"], ["explore", "--strategy"]].map((a) => gpusvm(a)))
    for (const r of runs) {
      assert.strictEqual(r.status, 2, show(r))
      assert.strictEqual(r.stdout, "", `no help on stdout for a parse error\n${show(r)}`)
      assert.match(r.stderr, /^gpusvm: [^\n]+\n$/, show(r))
    }
  })
  it("--help shows the allowed values (--machine simulated|native, --seed <non-negative integer>) and the exit codes, exit 0", async () => {
    const [r, root] = await Promise.all([gpusvm(["simulate", "--help"]), gpusvm(["--help"])])
    assert.strictEqual(r.status, 0, show(r))
    assert.match(r.stdout, /--machine simulated\|native/)
    assert.match(r.stdout, /--seed <non-negative integer>/)
    assert.match(r.stdout, /--kernel 6\.17\|7\.0/)
    assert.match(r.stdout, /0 every scenario passed.*1 a scenario failed.*2 bad input/s)
    assert.strictEqual(root.status, 0, show(root))
    assert.match(root.stdout, /2 bad input/)
  })
  it("the summary table shows human units (64K, not 0.06M) and FAIL lines name the scenario and its file", async () => {
    const bad = file("fails.json", { name: "fails", steps: [MMAP_A, { op: "cpu-read", buf: "a", expect: 7 }] })
    const r = await gpusvm(["simulate", "approx-once-malloc", bad])
    assert.strictEqual(r.status, 1, show(r))
    assert.match(r.stdout, /^approx-once-malloc\s+ok\s+\d+\s+\d+\s+64K\s+64K\s/m, show(r))
    assert.notMatch(r.stdout, /\d\.\d\dM/)
    const fail = r.stdout.split("\n").find((l) => l.startsWith("FAIL fails steps[1]:"))
    assert.isDefined(fail, show(r))
    assert.isTrue(fail!.endsWith(` (in ${bad})`), fail)
  })
  it("--json invalidations carry every MMU notifier event (zeros included) on the simulated machine", async () => {
    const r = await gpusvm(["simulate", "approx-once-malloc", "--json"])
    assert.strictEqual(r.status, 0, show(r))
    assert.sameMembers(Object.keys(results(r.stdout)[0]!.metrics.invalidations), [...MMU_EVENTS])
  })
  it.skipIf(noNative !== undefined)(`--machine native: same invalidation keys, skips what it cannot express (exit 0), and exits promptly after its output${noNative === undefined ? "" : ` — skipped: ${noNative}`}`, async () => {
    const started = performance.now()
    let lastOutput = started
    const child = spawn(process.execPath, [MAIN, "simulate", "--machine", "native", "--json", "approx-once-malloc", "approx-once-mmap-file", "approx-once-mmap-huge"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 50_000
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d
      lastOutput = performance.now()
    })
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d
    })
    const status = await new Promise<number | null>((res) => child.on("close", (code) => res(code)))
    const tail = performance.now() - lastOutput
    assert.strictEqual(status, 0, `${stdout}\n${stderr}`)
    const [malloc, fileMap, huge] = results(stdout)
    assert.sameMembers(Object.keys(malloc!.metrics.invalidations), [...MMU_EVENTS])
    assert.isUndefined(malloc!.skipped)
    assert.include(fileMap!.skipped ?? "", "file mappings")
    assert.isTrue(fileMap!.ok)
    if (huge!.skipped !== undefined) assert.include(huge!.skipped, "huge pages")
    // the helper's 5 s reaping timer used to hold the process after the last result
    assert.isBelow(tail, 2_000, `the process lingered ${Math.round(tail)} ms after its last output`)
  })
})
