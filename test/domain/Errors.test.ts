import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Schema } from "effect"
import * as E from "../../src/domain/Errors.ts"

type AddrErrorClass =
  | typeof E.InvalidArgument
  | typeof E.VmaNotFound
  | typeof E.PermissionDenied
  | typeof E.BadAddress
  | typeof E.MixedPages
  | typeof E.Again
  | typeof E.OutOfMemory
  | typeof E.Busy
  | typeof E.TimedOut
  | typeof E.AccessDenied

// The errno table of the module header (kernel errno each error stands for).
type AddrError = InstanceType<AddrErrorClass>

const TABLE: ReadonlyArray<readonly [AddrErrorClass, AddrError["_tag"], E.Errno]> = [
  [E.InvalidArgument, "InvalidArgument", "EINVAL"],
  [E.VmaNotFound, "VmaNotFound", "ENOENT"],
  [E.PermissionDenied, "PermissionDenied", "EPERM"],
  [E.BadAddress, "BadAddress", "EFAULT"],
  [E.MixedPages, "MixedPages", "EOPNOTSUPP"],
  [E.Again, "Again", "EAGAIN"],
  [E.OutOfMemory, "OutOfMemory", "ENOMEM"],
  [E.Busy, "Busy", "EBUSY"],
  [E.TimedOut, "TimedOut", "ETIME"],
  // §11.10: devmem_only without migrate_devmem
  [E.AccessDenied, "AccessDenied", "EACCES"]
]

const TOP_ADDR = 2 ** 53 - 1

describe("Errors: errno, _tag and message", () => {
  for (const [Cls, tag, errno] of TABLE) {
    it(`${tag} carries errno ${errno}, _tag ${tag}, and names the address in hex`, () => {
      const withAddr = new Cls({ reason: `reason of ${tag}`, addr: 0x7f00_dead_b000 })
      assert.strictEqual(withAddr._tag, tag)
      assert.strictEqual(withAddr.errno, errno)
      assert.strictEqual(withAddr.addr, 0x7f00_dead_b000)
      assert.instanceOf(withAddr, Error)
      assert.include(withAddr.message, errno)
      assert.include(withAddr.message, `reason of ${tag}`)
      assert.include(withAddr.message, "0x7f00deadb000")

      // the top address renders exactly
      const top = new Cls({ reason: "top", addr: TOP_ADDR })
      assert.include(top.message, "0x1fffffffffffff")

      // without an address the message has no hex part
      const noAddr = new Cls({ reason: `plain ${tag}` })
      assert.strictEqual(noAddr.errno, errno)
      assert.isUndefined(noAddr.addr)
      assert.include(noAddr.message, `plain ${tag}`)
      assert.notInclude(noAddr.message, "0x")
    })
  }

  it("errno values are distinct per error class (EINVAL shared only with InvalidConfig)", () => {
    const errnos = TABLE.map(([Cls]) => new Cls({ reason: "x" }).errno)
    assert.strictEqual(new Set(errnos).size, TABLE.length)
    assert.strictEqual(new E.InvalidConfig({ field: "f", reason: "r" }).errno, new E.InvalidArgument({ reason: "r" }).errno)
  })

  it("§11.10 AccessDenied is EACCES (devmem_only without migrate_devmem) and renders like the others", () => {
    const e = new E.AccessDenied({ reason: "device memory needed but the range cannot migrate", addr: 0x1000 })
    assert.strictEqual(e._tag, "AccessDenied")
    assert.strictEqual(e.errno, "EACCES")
    assert.strictEqual(e.message, "EACCES: device memory needed but the range cannot migrate at 0x1000")
    const errno: E.Errno = e.errno
    assert.strictEqual(errno, "EACCES")
    const asSvmError: E.SvmError = e
    assert.strictEqual(asSvmError._tag, "AccessDenied")
  })

  it("InvalidConfig carries EINVAL, _tag InvalidConfig, and names the field and reason", () => {
    const e = new E.InvalidConfig({ field: "notifierSize", reason: "must be a power of two, got 12288" })
    assert.strictEqual(e._tag, "InvalidConfig")
    assert.strictEqual(e.errno, "EINVAL")
    assert.strictEqual(e.field, "notifierSize")
    assert.include(e.message, "notifierSize")
    assert.include(e.message, "must be a power of two, got 12288")
    assert.include(e.message, "EINVAL")
    assert.instanceOf(e, Error)
  })
})

describe("Errors: in Effect", () => {
  it.effect("an error is yieldable in Effect.gen and fails with itself", () =>
    Effect.gen(function*() {
      const err = new E.VmaNotFound({ reason: "no vma", addr: 0x1000 })
      const exit = yield* Effect.exit(Effect.gen(function*() {
        yield* err
        return "unreachable"
      }))
      assert.isTrue(Exit.isFailure(exit))
      const flipped = yield* Effect.flip(Effect.gen(function*() {
        return yield* err
      }))
      assert.strictEqual(flipped, err)
    }))

  for (const [Cls, tag, errno] of TABLE) {
    it.effect(`Effect.catchTag("${tag}") catches ${tag} and sees errno ${errno}`, () =>
      Effect.gen(function*() {
        const program = Effect.gen(function*() {
          yield* new Cls({ reason: "r", addr: 0x2000 })
          return "ok" as string
        })
        const caught = yield* program.pipe(
          Effect.catchTag(tag, (e) => Effect.succeed(`caught ${e._tag} ${e.errno} ${e.addr}`))
        )
        assert.strictEqual(caught, `caught ${tag} ${errno} ${0x2000}`)
      }))
  }

  it.effect("Effect.catchTag only catches its own tag", () =>
    Effect.gen(function*() {
      const failing: Effect.Effect<string, E.PermissionDenied | E.BadAddress> = Effect.gen(function*() {
        return yield* new E.BadAddress({ reason: "gone", addr: 0x3000 })
      })
      const afterWrongCatch = yield* Effect.flip(failing.pipe(Effect.catchTag("PermissionDenied", () => Effect.succeed("wrong"))))
      assert.strictEqual(afterWrongCatch._tag, "BadAddress")
      assert.strictEqual(afterWrongCatch.errno, "EFAULT")
      const right = yield* failing.pipe(Effect.catchTag("BadAddress", (e) => Effect.succeed(e.message)))
      assert.include(right, "0x3000")
    }))

  it.effect("InvalidConfig is caught by tag and exposes field", () =>
    Effect.gen(function*() {
      const field = yield* Effect.gen(function*() {
        return yield* new E.InvalidConfig({ field: "chunkSizes", reason: "must end in 4096" })
      }).pipe(Effect.catchTag("InvalidConfig", (e) => Effect.succeed(e.field)))
      assert.strictEqual(field, "chunkSizes")
    }))

  it("GpuFaultError keeps its last cause typed: every fault-path error round-trips through the schema", () => {
    for (const [Cls, tag, errno] of TABLE) {
      const cause = new Cls({ reason: "why", addr: 0x2000 })
      const err = E.GpuFaultError.of(0x1000, "gave up", cause, 3)
      assert.strictEqual(err.causeTag, tag)
      assert.include(err.message, `last error ${tag}: ${errno}: why at 0x2000`)
      const encoded = Schema.encodeUnknownSync(E.GpuFaultError)(err)
      const back = Schema.decodeUnknownSync(E.GpuFaultError)(encoded)
      assert.strictEqual(back.cause?.constructor, Cls)
      assert.strictEqual(back.cause?.errno, errno)
      assert.strictEqual(back.retries, 3)
    }
    const bare = E.GpuFaultError.of(0x1000, "no handler")
    assert.strictEqual(bare.cause, undefined)
    assert.strictEqual(bare.causeTag, undefined)
    assert.notInclude(bare.message, "last error")
  })
})

describe("Errors: a value that is no address is printed as given (#18)", () => {
  // §3.1: an address outside the covered space is EINVAL; its message must show what the caller passed.
  const odd: ReadonlyArray<readonly [number, string]> = [[NaN, "NaN"], [-1, "-1"], [Infinity, "Infinity"], [-Infinity, "-Infinity"], [0.5, "0.5"], [4096.25, "4096.25"]]
  for (const [Cls, tag] of TABLE) {
    it(`§3.1 ${tag} with addr NaN / -1 / Infinity / 0.5 names the value as given, never 0xNaN / 0x-1 / 0x0.8`, () => {
      for (const [addr, shown] of odd) {
        const m = new Cls({ reason: "r", addr }).message
        assert.isTrue(m.endsWith(` at ${shown}`), `${tag}(${addr}): ${m}`)
        assert.notMatch(m, /0x(NaN|-|Infinity|[0-9a-f]*\.)/)
      }
    })
  }
  it("§3.1 GpuFaultError at a non-address names the value as given", () => {
    for (const [addr, shown] of odd) {
      const m = E.GpuFaultError.of(addr, "outside", new E.InvalidArgument({ reason: "x", addr })).message
      assert.include(m, `GPU fault at ${shown}:`)
      assert.include(m, `x at ${shown}`)
      assert.notMatch(m, /0x(NaN|-|Infinity|[0-9a-f]*\.)/)
    }
  })
})
