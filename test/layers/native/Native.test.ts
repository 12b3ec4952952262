/**
 * The native machine against a real helper process: VMAs (§3), hmm_range_fault
 * against pagemap (§8), notifiers from munmap (§7), migration round trips
 * (§9), the pagemap re-check on retry, and helper failures. On a host without
 * a capability each test skips naming it; on a Linux host with root and
 * userfaultfd none may skip.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { HUGE_PAGE_SIZE } from "../../../src/domain/Address.ts"
import { PROT_READ } from "../../../src/domain/Prot.ts"
import { Native, NativeMachine } from "../../../src/layers/native/Native.ts"
import { Cpu } from "../../../src/services/Cpu.ts"
import { DevicePagemap } from "../../../src/services/DevicePagemap.ts"
import { Hmm } from "../../../src/services/Hmm.ts"
import { Machine } from "../../../src/services/Machine.ts"
import { Mm } from "../../../src/services/Mm.ts"
import { MmuNotifier, type NotifierHandle } from "../../../src/services/MmuNotifier.ts"
import { caps, isGone, lacks, machineLayer, needs } from "./support.ts"

const KiB = 1024
const MiB = 1024 * KiB
const T = 30_000
const BASE = ["linux", "helperBuilt", "userfaultfd", "pfnVisible"] as const
const skip = lacks(...BASE)
const NEEDS = needs(...BASE)

/** A deterministic pseudo-random pattern (xorshift), so a byte slip anywhere shows. */
const noise = (seed: number, n: number) => {
  const out = new Uint8Array(n)
  let x = seed | 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

const workloadVmas = Effect.map(Effect.flatMap(Mm, (mm) => mm.vmas), (vs) => vs.filter((v) => v.start >= 2 ** 32 && v.end <= 2 ** 46))

describe("Native.probe", () => {
  it("reports every capability of this host, each missing one with a reason", () => {
    for (const k of ["linux", "helperBuilt", "userfaultfd", "forkEvents", "pfnVisible"] as const) {
      if (!caps[k]) assert.isString(caps.details[k])
    }
    if (process.platform === "linux" && process.getuid?.() === 0) {
      // the CI machine: root, userfaultfd, helper built by npm install (or on demand)
      assert.isTrue(caps.linux && caps.helperBuilt && caps.userfaultfd && caps.pfnVisible, JSON.stringify(caps))
    }
  })

  it.live.skipIf(lacks("linux"))(`a missing helper binary is a typed HelperUnavailable, not a crash (${needs("linux")})`, () =>
    Effect.gen(function*() {
      const err = yield* Effect.flip(Effect.scoped(Layer.build(Native.layer({ helperPath: "/nonexistent/gpusvm-helper" }))))
      assert.strictEqual(err._tag, "HelperUnavailable")
    }), T)

  it.live("require names the missing capability as a typed error", () =>
    Effect.gen(function*() {
      const r = yield* Effect.exit(Native.require(...BASE))
      if (skip) assert.isTrue(Exit.isFailure(r))
      else assert.isTrue(Exit.isSuccess(r))
    }))
})

describe("native machine", () => {
  it.live.skipIf(skip)(`§3 VMA listing follows mmap, munmap, mprotect and mremap (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const mm = yield* Mm
      const a = yield* cpu.mmap({ length: 256 * KiB })
      const b = yield* cpu.mmap({ length: 64 * KiB, shared: true })
      let vs = yield* workloadVmas
      assert.deepStrictEqual(vs.map((v) => [v.start, v.end, v.kind, v.shared]), [[a, a + 256 * KiB, "anonymous", false], [b, b + 64 * KiB, "anonymous", true]])
      yield* cpu.munmap(a + 64 * KiB, 64 * KiB)
      yield* cpu.mprotect(a, 64 * KiB, PROT_READ)
      vs = yield* workloadVmas
      assert.deepStrictEqual(vs.filter((v) => v.start < b).map((v) => [v.start - a, v.end - a, v.prot.write]), [[0, 64 * KiB, false], [128 * KiB, 256 * KiB, true]])
      const moved = yield* cpu.mremap(a + 128 * KiB, 128 * KiB, 512 * KiB)
      vs = yield* workloadVmas
      assert.isTrue(vs.some((v) => v.start === moved && v.end === moved + 512 * KiB))
      const hole = yield* mm.vmaLookup(a + 64 * KiB)
      assert.isTrue(hole._tag === "None")
      const found = yield* mm.findVmaIntersection(a, a + 128 * KiB)
      assert.isTrue(found._tag === "Some" && found.value.start === a)
      // the helper's own VMAs show too: libc (file) and [vdso] (special)
      const all = yield* mm.vmas
      assert.isTrue(all.some((v) => v.kind === "file"))
      assert.isTrue(all.some((v) => v.kind === "special"))
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`§8 rangeFault: PFNs match /proc/<pid>/pagemap, write and errors as the kernel's (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const hmm = yield* Hmm
      const mmu = yield* MmuNotifier
      const mm = yield* Mm
      const nm = yield* NativeMachine
      const buf = yield* cpu.mmap({ length: 2 * MiB, align: 2 * MiB })
      const h = yield* mmu.insert(buf, 2 * MiB, () => Effect.succeed(true))
      const seq = yield* mmu.readBegin(h)
      const before = yield* mm.withReadLock(hmm.rangeFault({ notifier: h, notifierSeq: seq, start: buf, end: buf + 2 * MiB, fault: false, write: false }))
      assert.isTrue(before.every((p) => !p.valid && !p.error))
      const pfns = yield* mm.withReadLock(hmm.rangeFault({ notifier: h, notifierSeq: seq, start: buf, end: buf + 2 * MiB, fault: true, write: true }))
      const pm = yield* nm.pagemap(buf, buf + 2 * MiB)
      assert.strictEqual(pfns.length, 512)
      for (let i = 0; i < 512; i++) {
        const p = pfns[i]!
        assert.isTrue(p.valid && p.write && p.page?._tag === "System")
        assert.isTrue(pm[i]!.present && pm[i]!.exclusive)
        assert.strictEqual(p.page?._tag === "System" ? p.page.pfn : -1, pm[i]!.pfn)
      }
      assert.isFalse(yield* mmu.readRetry(h, seq))
      // read-only VMA: write fault is EPERM; a hole is EFAULT
      const ro = yield* cpu.mmap({ length: 64 * KiB, prot: PROT_READ })
      const h2 = yield* mmu.insert(ro, 128 * KiB, () => Effect.succeed(true))
      const s2 = yield* mmu.readBegin(h2)
      const eperm = yield* Effect.flip(hmm.rangeFault({ notifier: h2, notifierSeq: s2, start: ro, end: ro + 64 * KiB, fault: true, write: true }))
      assert.strictEqual(eperm._tag, "PermissionDenied")
      const efault = yield* Effect.flip(hmm.rangeFault({ notifier: h2, notifierSeq: s2, start: ro, end: ro + 128 * KiB, fault: true, write: false }))
      assert.strictEqual(efault._tag, "BadAddress")
      // a read fault of a private page maps the shared zero page: valid, not writable
      const rd = yield* hmm.rangeFault({ notifier: h2, notifierSeq: s2, start: ro, end: ro + 4096, fault: true, write: false })
      assert.isTrue(rd[0]!.valid && !rd[0]!.write)
      // a moved notifier is EBUSY
      yield* cpu.madviseDontNeed(buf, 4096)
      assert.isTrue(yield* mmu.readRetry(h, seq))
      const busy = yield* Effect.flip(hmm.rangeFault({ notifier: h, notifierSeq: seq, start: buf, end: buf + 4096, fault: true, write: true }))
      assert.strictEqual(busy._tag, "Busy")
    }).pipe(Effect.provide(machineLayer())), T)

  for (const source of ["cpu", "uffd"] as const) {
    it.live.skipIf(skip)(`§7 munmap in the target reaches the invalidate callback before munmap returns (notifier: ${source}) (${NEEDS})`, () =>
      Effect.gen(function*() {
        const cpu = yield* Cpu
        const mmu = yield* MmuNotifier
        const hmm = yield* Hmm
        const nm = yield* NativeMachine
        const seen: Array<string> = []
        const buf = yield* cpu.mmap({ length: 1 * MiB })
        const h: NotifierHandle = yield* mmu.insert(buf, 1 * MiB, (r, cur) =>
          Effect.andThen(mmu.setSeq(h, cur), Effect.sync(() => {
            seen.push(`${r.event} ${r.start - buf} ${r.end - buf}`)
            return true
          })))
        const seq = yield* mmu.readBegin(h)
        yield* hmm.rangeFault({ notifier: h, notifierSeq: seq, start: buf, end: buf + 1 * MiB, fault: true, write: true })
        yield* cpu.munmap(buf + 256 * KiB, 256 * KiB)
        assert.deepStrictEqual(seen, [`unmap ${256 * KiB} ${512 * KiB}`])
        // the fault that read `seq` before the munmap cannot commit
        assert.isTrue(yield* mmu.readRetry(h, seq))
        yield* cpu.madviseDontNeed(buf, 64 * KiB)
        assert.deepStrictEqual(seen[1], `clear 0 ${64 * KiB}`)
        const u = yield* nm.uffd
        assert.strictEqual(u.byKind["unmap"], 1)
        assert.strictEqual(u.byKind["remove"], 1)
        if (source === "cpu") assert.strictEqual(u.confirmed, 2)
        else assert.strictEqual(u.unsolicited, 2)
        assert.deepStrictEqual(yield* (yield* Machine).violations, [])
      }).pipe(Effect.provide(machineLayer({ notifier: source }))), T)
  }

  for (const size of [64 * KiB, 2 * MiB]) {
    it.live.skipIf(skip)(`§9 byte-exact migration round trip of ${size / KiB} KiB: to device memory and back on a CPU fault (${NEEDS})`, () =>
      Effect.gen(function*() {
        const cpu = yield* Cpu
        const pm = yield* DevicePagemap
        const nm = yield* NativeMachine
        const buf = yield* cpu.mmap({ length: size, align: HUGE_PAGE_SIZE })
        const data = noise(size, size)
        yield* cpu.write(buf, data)
        yield* pm.populateMm(buf, buf + size)
        // on the device: no page present in the process, the bytes in device memory
        const away = yield* nm.pagemap(buf, buf + size)
        assert.strictEqual(away.filter((e) => e.present).length, 0)
        assert.deepStrictEqual(yield* pm.usage, { totalBytes: 256 * MiB, usedBytes: size, allocations: 1 })
        assert.deepStrictEqual(yield* pm.readDevice(0, size), data)
        // a CPU load faults: UFFDIO_COPY brings the chunk back
        assert.deepStrictEqual(yield* cpu.read(buf, size), data)
        const back = yield* nm.pagemap(buf, buf + size)
        assert.strictEqual(back.filter((e) => e.present).length, size / 4096)
        assert.deepStrictEqual(yield* pm.usage, { totalBytes: 256 * MiB, usedBytes: 0, allocations: 0 })
        const t = yield* pm.traffic
        assert.strictEqual(t.bytesToVram, size)
        assert.strictEqual(t.bytesToRam, size)
        assert.isAtLeast((yield* nm.uffd).pagefaults, 1)
        // again, back through a store this time
        yield* pm.populateMm(buf, buf + size)
        yield* cpu.write(buf + 8, Uint8Array.of(1, 2, 3))
        const want = data.slice()
        want.set([1, 2, 3], 8)
        assert.deepStrictEqual(yield* cpu.read(buf, size), want)
        assert.deepStrictEqual(yield* (yield* Machine).violations, [])
      }).pipe(Effect.provide(machineLayer())), T)
  }

  it.live.skipIf(skip)(`§9 hmm_range_fault keeps pages of its own owner on the device and migrates a foreign owner's back (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const pm = yield* DevicePagemap
      const hmm = yield* Hmm
      const mmu = yield* MmuNotifier
      const buf = yield* cpu.mmap({ length: 64 * KiB })
      yield* cpu.write(buf, noise(3, 64 * KiB))
      yield* pm.populateMm(buf, buf + 64 * KiB)
      const h: NotifierHandle = yield* mmu.insert(buf, 64 * KiB, (_r, cur) => Effect.as(mmu.setSeq(h, cur), true))
      let seq = yield* mmu.readBegin(h)
      const mine = yield* hmm.rangeFault({ notifier: h, notifierSeq: seq, start: buf, end: buf + 64 * KiB, fault: true, write: true, devicePrivateOwner: pm.owner })
      assert.isTrue(mine.every((p) => p.valid && p.page?._tag === "Device"))
      // another owner: migrate back first (the MIGRATE invalidation moves the sequence: EBUSY, then the retry succeeds)
      const first = yield* Effect.exit(hmm.rangeFault({ notifier: h, notifierSeq: seq, start: buf, end: buf + 64 * KiB, fault: true, write: true, devicePrivateOwner: "someone-else" }))
      assert.isTrue(Exit.isFailure(first))
      seq = yield* mmu.readBegin(h)
      const sys = yield* hmm.rangeFault({ notifier: h, notifierSeq: seq, start: buf, end: buf + 64 * KiB, fault: true, write: true, devicePrivateOwner: "someone-else" })
      assert.isTrue(sys.every((p) => p.valid && p.page?._tag === "System"))
      assert.deepStrictEqual(yield* cpu.read(buf, 64 * KiB), noise(3, 64 * KiB))
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`§7 readRetry re-checks pagemap: PFNs changed behind uffd's back move the sequence and raise CLEAR (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const hmm = yield* Hmm
      const mmu = yield* MmuNotifier
      const nm = yield* NativeMachine
      const events: Array<string> = []
      const buf = yield* cpu.mmap({ length: 64 * KiB })
      const h: NotifierHandle = yield* mmu.insert(buf, 64 * KiB, (r, cur) =>
        Effect.andThen(mmu.setSeq(h, cur), Effect.sync(() => {
          events.push(r.event)
          return true
        })))
      const seq = yield* mmu.readBegin(h)
      yield* hmm.rangeFault({ notifier: h, notifierSeq: seq, start: buf, end: buf + 64 * KiB, fault: true, write: true })
      assert.isFalse(yield* mmu.readRetry(h, seq))
      // a change uffd never reports: unregister, drop the pages, fault fresh ones in
      assert.isTrue((yield* nm.raw("unreg", [buf, 64 * KiB])).ok)
      assert.isTrue((yield* nm.raw("dontneed", [buf, 64 * KiB])).ok)
      assert.isTrue((yield* nm.raw("populate", [buf, 64 * KiB, 1])).ok)
      assert.isTrue(yield* mmu.readRetry(h, seq))
      assert.strictEqual((yield* nm.uffd).pagemapChanges, 1)
      yield* Effect.sleep("50 millis")
      assert.deepStrictEqual(events, ["clear"])
    }).pipe(Effect.provide(machineLayer())), T)
})

describe("native machine: fork", () => {
  const FORK = [...BASE, "forkEvents"] as const
  it.live.skipIf(lacks(...FORK))(`§7 a fork in the target (uffd FORK event, not raised by Node) reaches the callback as PROTECTION_PAGE (${needs(...FORK)})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const mmu = yield* MmuNotifier
      const nm = yield* NativeMachine
      const events: Array<string> = []
      const buf = yield* cpu.mmap({ length: 64 * KiB })
      yield* cpu.write(buf, noise(5, 64 * KiB))
      const h: NotifierHandle = yield* mmu.insert(buf, 64 * KiB, (r, cur) =>
        Effect.andThen(mmu.setSeq(h, cur), Effect.sync(() => {
          events.push(r.event)
          return true
        })))
      assert.isTrue((yield* nm.raw("fork", [])).ok)
      assert.deepStrictEqual(events, ["protection-page"])
      const u = yield* nm.uffd
      assert.strictEqual(u.byKind["fork"], 1)
      assert.strictEqual(u.unsolicited, 1)
      assert.deepStrictEqual(yield* cpu.read(buf, 64 * KiB), noise(5, 64 * KiB))
    }).pipe(Effect.provide(machineLayer())), T)
})

describe("native machine: helper failures", () => {
  it.live.skipIf(skip)(`a killed helper: typed errors from every service, the Node process goes on, no orphan (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const mm = yield* Mm
      const nm = yield* NativeMachine
      const buf = yield* cpu.mmap({ length: 64 * KiB })
      yield* nm.kill()
      assert.isTrue(isGone(nm.pid))
      assert.isFalse(yield* nm.helperAlive)
      assert.strictEqual((yield* Effect.flip(cpu.munmap(buf, 64 * KiB)))._tag, "InvalidArgument")
      assert.strictEqual((yield* Effect.flip(cpu.read(buf, 16)))._tag, "BadAddress")
      assert.strictEqual((yield* Effect.flip(cpu.write(buf, Uint8Array.of(1))))._tag, "BadAddress")
      const acq = yield* Effect.flip(mm.acquire)
      assert.strictEqual(acq._tag, "BadAddress")
      assert.include(acq.reason, "helper")
      const v = yield* (yield* Machine).violations
      assert.isTrue(v.some((x) => x.invariant === "helper-died"))
      yield* cpu.exit // after death: a no-op, never a hang
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`helper killed mid-migration (a CPU fault waiting on device pages): the waiting call fails typed, no hang (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const pm = yield* DevicePagemap
      const nm = yield* NativeMachine
      const buf = yield* cpu.mmap({ length: 2 * MiB })
      yield* cpu.write(buf, noise(9, 2 * MiB))
      yield* pm.populateMm(buf, buf + 2 * MiB)
      yield* nm.kill("SIGSTOP")
      const reader = yield* Effect.forkChild(Effect.exit(cpu.read(buf, 2 * MiB)))
      yield* Effect.sleep("100 millis")
      yield* nm.kill("SIGKILL")
      const exit = yield* Fiber.join(reader)
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) assert.include(String(exit.cause), "HelperFailed")
      assert.isTrue(isGone(nm.pid))
      assert.strictEqual((yield* Effect.flip(pm.populateMm(buf, buf + 2 * MiB)))._tag, "BadAddress")
    }).pipe(Effect.provide(machineLayer())), T)

  it.live.skipIf(skip)(`a stopped helper: requests time out with a typed error instead of hanging (${NEEDS})`, () =>
    Effect.gen(function*() {
      const cpu = yield* Cpu
      const nm = yield* NativeMachine
      const buf = yield* cpu.mmap({ length: 64 * KiB })
      yield* nm.kill("SIGSTOP")
      const err = yield* Effect.flip(cpu.munmap(buf, 64 * KiB))
      assert.strictEqual(err._tag, "InvalidArgument")
      assert.include(err.reason, "timeout")
    }).pipe(Effect.provide(machineLayer({ timeoutMs: 300 }))), T)

  it.live.skipIf(skip)(`exit mid-fault and scope close: no orphan helper, checked by pid (${NEEDS})`, () =>
    Effect.gen(function*() {
      // exit: the address space goes, Mm.acquire and Hmm fail typed
      const pid1 = yield* Effect.scoped(Effect.gen(function*() {
        const ctx = yield* Layer.build(machineLayer())
        const cpu = Context.get(ctx, Cpu)
        const nm = Context.get(ctx, NativeMachine)
        const buf = yield* cpu.mmap({ length: 64 * KiB })
        const reading = yield* Effect.forkChild(Effect.exit(cpu.read(buf, 64 * KiB)))
        yield* cpu.exit
        yield* Fiber.join(reading)
        assert.strictEqual((yield* Effect.flip(Context.get(ctx, Mm).acquire))._tag, "BadAddress")
        return nm.pid
      }))
      assert.isTrue(isGone(pid1))
      // scope close kills a live helper and waits for it
      const scope = yield* Scope.make()
      const ctx = yield* Layer.buildWithScope(machineLayer(), scope)
      const nm = Context.get(ctx, NativeMachine)
      assert.isFalse(isGone(nm.pid))
      yield* Scope.close(scope, Exit.void)
      assert.isTrue(isGone(nm.pid))
    }), T)
})
