/**
 * The native `DevicePagemap`: device memory is bytes held in Node, and
 * migration is emulated with userfaultfd (native-linux.md §3,
 * kernel-semantics §9).
 *
 * To the device (`populateMm`), under the mmap write lock and the migration
 * lock, inside a MIGRATE invalidation owned by this pagemap's owner:
 * 1. register the window MISSING + WP with the uffd;
 * 2. `UFFDIO_WRITEPROTECT` it (stands in for migration entries: a concurrent
 *    CPU writer blocks);
 * 3. copy the bytes out through `/proc/<pid>/mem` into the allocation;
 * 4. `MADV_DONTNEED` on the helper's control thread (0 pages present after);
 * 5. un-protect: a CPU touch now MISSING-faults.
 *
 * Back to RAM (a CPU fault forwarded as a `pf` event, `Hmm.rangeFault` of a
 * foreign owner, eviction, or a Cpu change of device-resident pages), inside
 * a MIGRATE invalidation: the allocation's bytes are written into the
 * helper's fill buffer and `UFFDIO_COPY`'d back per chunk (pages that are
 * already present — a lost race — are skipped), then the window goes back to
 * event-only (WP) registration and the allocation is freed. Migration state
 * is tracked explicitly: a changed PFN is not proof of a migration (pages
 * often get their old PFN back).
 *
 * A CPU fault on an allocation whose `timesliceMs` (Effect clock) has not
 * expired waits it out first; eviction and `hmm_range_fault` of a foreign
 * owner do not.
 *
 * Device addresses come from a first-fit allocator over `vramBytes`; a full
 * VRAM evicts the oldest allocations first (`OutOfMemory` if still full).
 * The device memory is the machine's, not the process's (kernel-semantics
 * §11.17: pagemaps are per device): each process of the machine has its own
 * pagemap object (migrating its own address space through its own helper)
 * over one `NativeDevice`, so allocation, eviction (of any process's oldest
 * allocation, through that process's helper), usage, traffic and `evictAll`
 * are device-wide. A process's GPU reaches only its own allocations (another
 * process's device address is a stale access).
 *
 * After a fork of the process, its allocations are `cow` (read-only
 * device-private entries): `hmm_range_fault` reports them without write, and
 * a write fault migrates them back to RAM (`NativeHmm.ts`); a CPU touch
 * migrates them back anyway (MISSING fault).
 * Only private anonymous memory migrates (`canMigrateToDevmem`).
 *
 * @since 0.1.0
 */
import { Clock, Effect } from "effect"
import { PAGE_SIZE, hex } from "../../domain/Address.ts"
import { type DeviceAddress, type DmaDirection } from "../../domain/DeviceAddress.ts"
import { BadAddress, Busy, OutOfMemory } from "../../domain/Errors.ts"
import type { DevicePage } from "../../domain/PageRef.ts"
import type { DevicePagemapApi, PopulateOptions } from "../../services/DevicePagemap.ts"
import type { DeviceAlloc, NativeState } from "./NativeState.ts"
import { errnoText } from "./NativeState.ts"
import { isPresent } from "./Proc.ts"

/**
 * The interconnect protocol name of native device addresses.
 *
 * @category constants
 */
export const NATIVE_VRAM_PROTO = "native-vram"

/**
 * The pagemap API plus what the event fiber needs.
 *
 * @category models
 */
export interface NativePagemap extends DevicePagemapApi {
  /** Resolves a userfaultfd page fault at `addr` (`flags` from the event): migrates its allocation back, or zero-fills. */
  readonly resolveFault: (addr: number, flags: number) => Effect.Effect<void>
  /** `readDevice` as one synchronous step: the bytes, or why not. */
  readonly readSync: (devAddr: number, length: number) => Uint8Array | string
  /** `writeDevice` as one synchronous step: undefined, or why not. */
  readonly writeSync: (devAddr: number, bytes: Uint8Array) => string | undefined
}

/**
 * Live page runs `[start, end)` of an allocation (munmapped pages are gone).
 *
 * @category functions
 */
export const liveRuns = (a: DeviceAlloc): Array<readonly [number, number]> => {
  const out: Array<readonly [number, number]> = []
  const n = (a.end - a.start) / PAGE_SIZE
  for (let i = 0; i < n;) {
    if (a.gone[i] === 1) {
      i++
      continue
    }
    let j = i
    while (j < n && a.gone[j] === 0) j++
    out.push([a.start + i * PAGE_SIZE, a.start + j * PAGE_SIZE])
    i = j
  }
  return out
}

/**
 * Builds the device pagemap of machine `st` (and installs `st.migrateBack`).
 *
 * @category functions
 */
export const makePagemap = (st: NativeState): NativePagemap => {
  const id = st.config.pagemapId
  const owner = st.config.devicePrivateOwner
  const total = st.config.vramBytes
  const fill = st.helper.hello.fill
  const stage = st.helper.hello.staging

  /** First-fit device address for `len` bytes (over every process's allocations: one device memory, §11.17). */
  const allocDev = (len: number): number | undefined => {
    const used = st.device.allocations().map((a) => [a.devAddr, a.devAddr + (a.end - a.start)] as const).sort((a, b) => a[0] - b[0])
    let at = 0
    for (const [s, e] of used) {
      if (s - at >= len) break
      at = Math.max(at, e)
    }
    return at + len <= total ? at : undefined
  }

  const ctl = (call: string, cmd: string, args: ReadonlyArray<number>, addr: number) =>
    Effect.flatMap(st.requestAddr(call, cmd, args, addr), (r) =>
      r.ok === 1 ? Effect.succeed(r) : Effect.fail(new BadAddress({ reason: `${call}: ${cmd}: ${errnoText(r)}`, addr })))

  /** Copies `a` back to RAM and frees it. Caller holds the migration lock. */
  const toRamLocked = (a: DeviceAlloc): Effect.Effect<void, BadAddress> =>
    Effect.suspend(() => {
      if (!st.allocs.has(a.id)) return Effect.void
      const body = Effect.gen(function*() {
        for (const [s, e] of liveRuns(a)) {
          for (let at = s; at < e;) {
            const n = Math.min(stage, e - at)
            const off = at - a.start
            yield* Effect.try({
              try: () => st.proc.writeMem(fill, a.bytes.subarray(off, off + n)),
              catch: (x) => new BadAddress({ reason: `migrate_to_ram: fill buffer: ${String(x)}`, addr: at })
            })
            yield* ctl("migrate_to_ram", "copy", [at, n], at)
            at += n
          }
          // back to event-only registration (drops MISSING)
          yield* st.eventOnly(s, e)
        }
        st.traffic.bytesToRam += a.live * PAGE_SIZE
        st.traffic.pagesToRam += a.live
        st.allocs.delete(a.id)
      })
      return st.notifiers.invalidate(a.start, a.end, "migrate", st.expecting(a.start, a.end, body), owner)
    })

  const migrateBack = (start: number, end: number): Effect.Effect<void, BadAddress> =>
    st.migLock.withPermits(1)(Effect.suspend(() => Effect.forEach(st.allocsIn(start, end), toRamLocked, { discard: true })))
  st.migrateBack = migrateBack
  st.toRamLocked = toRamLocked

  /** Copies `a` (of any process of the machine) back to RAM through its own process. Caller holds the migration lock. */
  const evictLocked = (a: DeviceAlloc): Effect.Effect<void, BadAddress> => {
    const p = st.device.ownerOf(a)
    return p === undefined ? Effect.void : p.toRamLocked(a)
  }

  /** Waits out the timeslice of the allocation holding `page`, if any (the CPU touch waits, like the kernel's `migrate_to_ram`). */
  const timeslice = (page: number): Effect.Effect<void> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const a = st.allocsIn(page, page + PAGE_SIZE)[0]
      return a === undefined || a.until <= now ? Effect.void : Effect.sleep(a.until - now)
    })

  const resolveFault = (addr: number, flags: number): Effect.Effect<void> => {
    if ((flags & 2) !== 0) return Effect.void // a write-protect fault: the un-protect at the end of the migration wakes it
    const page = addr - (addr % PAGE_SIZE)
    return Effect.andThen(timeslice(page), st.migLock.withPermits(1)(Effect.suspend(() => {
      const a = st.allocsIn(page, page + PAGE_SIZE)[0]
      const fallback = Effect.asVoid(Effect.ignore(Effect.andThen(st.helper.request("zero", [page, PAGE_SIZE]), st.helper.request("wake", [page, PAGE_SIZE]))))
      if (a === undefined) return fallback
      return Effect.catch(toRamLocked(a), (e) =>
        Effect.andThen(Effect.sync(() => st.recordViolation({ invariant: "migrate-to-ram-failed", detail: e.message })), fallback))
    })))
  }

  const populateMm = (start: number, end: number, o?: PopulateOptions): Effect.Effect<void, OutOfMemory | Busy | BadAddress> =>
    Effect.suspend(() => {
      if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start % PAGE_SIZE !== 0 || end % PAGE_SIZE !== 0 || end <= start) {
        return Effect.fail(new BadAddress({ reason: "populate_mm: window must be page aligned and non-empty", addr: start }))
      }
      const len = end - start
      if (len > total) return Effect.fail(new OutOfMemory({ reason: `populate_mm: ${len} bytes exceed the pagemap's ${total}`, addr: start }))
      return st.lock.withWrite(st.migLock.withPermits(1)(Effect.gen(function*() {
        if (!st.alive) return yield* new BadAddress({ reason: "populate_mm: the address space has exited", addr: start })
        const vma = st.vmas().find((v) => v.start <= start && end <= v.end)
        if (vma === undefined || vma.kind !== "anonymous" || vma.shared || !vma.prot.read) {
          return yield* new BadAddress({ reason: "populate_mm: the window is not inside one private anonymous VMA", addr: start })
        }
        const here = st.allocsIn(start, end)
        if (here.length === 1 && here[0]!.start === start && here[0]!.end === end && here[0]!.live === len / PAGE_SIZE) return
        for (const a of here) yield* toRamLocked(a)
        if (st.inject.vramAllocFail > 0) {
          st.inject.vramAllocFail--
          return yield* new OutOfMemory({ reason: "populate_mm: device memory allocation failed (injected)", addr: start })
        }
        let dev = allocDev(len)
        while (dev === undefined) {
          // §11.17: eviction crosses processes (IGT processes-evict-*): the oldest allocation of any process goes
          const victim = st.device.allocations()[0]
          if (victim === undefined) break
          yield* evictLocked(victim)
          st.traffic.evictions++
          dev = allocDev(len)
        }
        if (dev === undefined) return yield* new OutOfMemory({ reason: `populate_mm: no ${len} bytes of device memory`, addr: start })
        const devAddr = dev
        const bytes = new Uint8Array(len)
        let present = 0
        const body = Effect.gen(function*() {
          yield* ctl("populate_mm", "reg", [start, len, 3], start)
          st.touchMaps()
          const undo = Effect.ignore(Effect.andThen(st.helper.request("wp", [start, len, 0]), st.eventOnly(start, end)))
          yield* Effect.onError(
            Effect.gen(function*() {
              yield* ctl("populate_mm", "wp", [start, len, 1], start)
              // copy out the present pages only: a read of a missing page would fault the
              // now MISSING-registered range from a remote access (EIO); missing pages are zeros
              const runs = yield* Effect.try({
                try: () => {
                  const w = st.proc.pagemapRaw(start, end)
                  const out: Array<readonly [number, number]> = []
                  for (let i = 1; i < w.length; i += 2) {
                    if (!isPresent(w[i]!)) continue
                    const p = start + ((i - 1) / 2) * PAGE_SIZE
                    const last = out[out.length - 1]
                    if (last !== undefined && last[1] === p) out[out.length - 1] = [last[0], p + PAGE_SIZE]
                    else out.push([p, p + PAGE_SIZE])
                  }
                  return out
                },
                catch: (x) => new BadAddress({ reason: `populate_mm: pagemap: ${String(x)}`, addr: start })
              })
              for (const [s, e] of runs) {
                present += (e - s) / PAGE_SIZE
                yield* Effect.try({
                  try: () => st.proc.readMem(s, bytes.subarray(s - start, e - start)),
                  catch: (x) => new BadAddress({ reason: `populate_mm: copy out through /proc/${st.helper.pid}/mem: ${String(x)}`, addr: s })
                })
              }
              yield* ctl("populate_mm", "dontneed", [start, len], start)
            }),
            () => undo
          )
          yield* ctl("populate_mm", "wp", [start, len, 0], start)
          const now = yield* Clock.currentTimeMillis
          const ts = o?.timesliceMs ?? 0
          const until = Number.isFinite(ts) && ts > 0 ? now + ts : 0
          const a: DeviceAlloc = {
            id: st.device.nextAlloc++,
            start,
            end,
            devAddr,
            bytes,
            until,
            live: len / PAGE_SIZE,
            gone: new Uint8Array(len / PAGE_SIZE),
            cow: false
          }
          st.allocs.set(a.id, a)
          st.traffic.bytesToVram += present * PAGE_SIZE
          st.traffic.pagesToVram += len / PAGE_SIZE
        })
        // a failed copy leaves nothing migrated: Busy (the caller may retry or stay in system memory)
        yield* st.notifiers.invalidate(start, end, "migrate", st.expecting(start, end, body), owner).pipe(
          Effect.mapError((e) => new Busy({ reason: e.reason, addr: start }))
        )
      })))
    })

  const allocOfDev = (devAddr: number): DeviceAlloc | undefined => {
    for (const a of st.allocs.values()) if (a.devAddr <= devAddr && devAddr < a.devAddr + (a.end - a.start)) return a
    return undefined
  }

  const deviceMap = (page: DevicePage, order: number, dir: DmaDirection): Effect.Effect<DeviceAddress, BadAddress> =>
    Effect.suspend(() => {
      if (typeof page !== "object" || page === null || page._tag !== "Device" || page.pagemap !== id) {
        return Effect.fail(new BadAddress({ reason: `device_map: not a page of pagemap ${id}` }))
      }
      const a = st.allocs.get(page.allocation)
      const addr = page.devicePfn * PAGE_SIZE
      if (a === undefined || allocOfDev(addr) !== a) return Effect.fail(new BadAddress({ reason: `device_map: device page ${hex(addr)} is not allocated` }))
      st.device.deviceMappings++
      return Effect.succeed({ addr, proto: NATIVE_VRAM_PROTO, order, dir })
    })

  /** The allocation and offset of `[devAddr, devAddr + length)`, or why not (recorded as a stale device access). */
  const locate = (devAddr: number, length: number): { a: DeviceAlloc; off: number } | string => {
    const a = allocOfDev(devAddr)
    if (a === undefined || devAddr + length > a.devAddr + (a.end - a.start)) {
      const why = `device memory ${hex(devAddr)} (+${length}) is not allocated`
      st.recordViolation({ invariant: "stale-device-access", detail: why })
      return why
    }
    return { a, off: devAddr - a.devAddr }
  }
  const readSync = (devAddr: number, length: number): Uint8Array | string => {
    const r = locate(devAddr, length)
    return typeof r === "string" ? r : r.a.bytes.slice(r.off, r.off + length)
  }
  const writeSync = (devAddr: number, bytes: Uint8Array): string | undefined => {
    const r = locate(devAddr, bytes.length)
    if (typeof r === "string") return r
    r.a.bytes.set(bytes, r.off)
    return undefined
  }

  return {
    id,
    owner,
    proto: NATIVE_VRAM_PROTO,
    deviceMap,
    dpaBase: 0,
    totalBytes: total,
    deviceUnmap: (_a: DeviceAddress) =>
      Effect.sync(() => {
        if (st.device.deviceMappings > 0) st.device.deviceMappings--
        else st.recordViolation({ invariant: "device-unmap-unknown", detail: `device_unmap of ${JSON.stringify(_a)} with no live device mapping` })
      }),
    liveMappings: Effect.sync(() => st.device.deviceMappings),
    populateMm,
    evictAll: st.migLock.withPermits(1)(Effect.suspend(() =>
      Effect.forEach(st.device.allocations(), (a) =>
        Effect.andThen(
          Effect.catch(evictLocked(a), (e) => Effect.sync(() => st.recordViolation({ invariant: "evict-failed", detail: e.message }))),
          Effect.sync(() => {
            st.traffic.evictions++
          })
        ), { discard: true }))),
    usage: Effect.sync(() => {
      const all = st.device.allocations()
      let used = 0
      for (const a of all) used += a.end - a.start
      return { totalBytes: total, usedBytes: used, allocations: all.length }
    }),
    traffic: Effect.sync(() => ({ ...st.traffic })),
    readDevice: (devAddr, length) =>
      Effect.suspend(() => {
        const r = readSync(devAddr, length)
        return typeof r === "string" ? Effect.fail(new BadAddress({ reason: r, addr: devAddr })) : Effect.succeed(r)
      }),
    writeDevice: (devAddr, bytes) =>
      Effect.suspend(() => {
        const r = writeSync(devAddr, bytes)
        return r === undefined ? Effect.void : Effect.fail(new BadAddress({ reason: r, addr: devAddr }))
      }),
    // §11.17: buffer objects are simulated only for now (the native pagemap's device memory backs SVM ranges alone)
    allocateBo: (bytes) => Effect.fail(new OutOfMemory({ reason: `buffer objects (${bytes} bytes) are simulated only: the native pagemap has no BO allocator` })),
    freeBo: () => Effect.void,
    readSync,
    writeSync,
    resolveFault
  }
}
