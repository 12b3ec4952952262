import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import * as C from "../../src/domain/GpuSvmConfig.ts"
import { InvalidConfig } from "../../src/domain/Errors.ts"

const KiB = 1024
const MiB = 1024 * KiB
const TOP = 2 ** 53

/** A valid base; each rejection test breaks exactly one field of it. */
const BASE = {
  name: "xe",
  mmStart: 0,
  mmRange: 2 ** 47,
  notifierSize: 512 * MiB,
  chunkSizes: [2 * MiB, 64 * KiB, 4 * KiB]
} as const

const show = (u: unknown): string =>
  JSON.stringify(u, (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : v)) ?? String(u)

/** Decodes, expects an `InvalidConfig` naming `field` (in `field` and in the message). */
const rejects = (input: unknown, field: string) =>
  Effect.gen(function*() {
    const e = yield* Effect.flip(C.decode(input))
    assert.instanceOf(e, InvalidConfig)
    assert.strictEqual(e._tag, "InvalidConfig")
    assert.strictEqual(e.errno, "EINVAL")
    assert.strictEqual(e.field, field, `field of ${show(input)}: ${e.message}`)
    assert.include(e.message, `"${field}"`)
    assert.isAbove(e.reason.length, 0)
    // decodeExit agrees with decode
    const exit = C.decodeExit(input)
    assert.isTrue(Exit.isFailure(exit))
    return e
  })

describe("GpuSvmConfig: rejected chunkSizes (§2)", () => {
  it.effect("not strictly descending (ascending pair) → chunkSizes", () =>
    Effect.gen(function*() {
      const e = yield* rejects({ ...BASE, chunkSizes: [64 * KiB, 2 * MiB, 4096] }, "chunkSizes")
      assert.include(e.reason, "descending")
    }))
  it.effect("not strictly descending (repeated size) → chunkSizes", () =>
    rejects({ ...BASE, chunkSizes: [64 * KiB, 64 * KiB, 4096] }, "chunkSizes"))
  it.effect("not a power of two (12 KiB) → chunkSizes", () =>
    Effect.gen(function*() {
      const e = yield* rejects({ ...BASE, chunkSizes: [2 * MiB, 12 * KiB, 4096] }, "chunkSizes")
      assert.include(e.reason, "power of two")
    }))
  it.effect("not a power of two (0 in the list) → chunkSizes", () =>
    rejects({ ...BASE, chunkSizes: [2 * MiB, 0, 4096] }, "chunkSizes"))
  it.effect("not ending in 4096 → chunkSizes", () =>
    Effect.gen(function*() {
      const e = yield* rejects({ ...BASE, chunkSizes: [2 * MiB, 64 * KiB] }, "chunkSizes")
      assert.include(e.reason, "4096")
    }))
  it.effect("ending below 4096 (…, 4096, 2048) → chunkSizes", () =>
    rejects({ ...BASE, chunkSizes: [2 * MiB, 4096, 2048] }, "chunkSizes"))
  it.effect("empty → chunkSizes", () => rejects({ ...BASE, chunkSizes: [] }, "chunkSizes"))
  it.effect("wrong type: a string → chunkSizes", () => rejects({ ...BASE, chunkSizes: "2M,64K,4K" }, "chunkSizes"))
  it.effect("wrong element type: a string element → chunkSizes", () =>
    rejects({ ...BASE, chunkSizes: [2 * MiB, "4096"] }, "chunkSizes"))
  it.effect("non-integer element → chunkSizes", () => rejects({ ...BASE, chunkSizes: [8192.5, 4096] }, "chunkSizes"))
})

describe("GpuSvmConfig: rejected notifierSize (§2)", () => {
  it.effect("not a power of two (3 MiB) → notifierSize", () =>
    Effect.gen(function*() {
      const e = yield* rejects({ ...BASE, notifierSize: 3 * MiB }, "notifierSize")
      assert.include(e.reason, "power of two")
    }))
  it.effect("smaller than 4096 (2048, a power of two) → notifierSize", () =>
    Effect.gen(function*() {
      const e = yield* rejects({ ...BASE, notifierSize: 2048, chunkSizes: [4096] }, "notifierSize")
      assert.include(e.reason, "4096")
    }))
  it.effect("zero → notifierSize", () => rejects({ ...BASE, notifierSize: 0 }, "notifierSize"))
  it.effect("negative → notifierSize", () => rejects({ ...BASE, notifierSize: -(512 * MiB) }, "notifierSize"))
  it.effect("wrong type: string \"4096\" → notifierSize", () => rejects({ ...BASE, notifierSize: "4096" }, "notifierSize"))
  it.effect("not an integer → notifierSize", () => rejects({ ...BASE, notifierSize: 4096.5 }, "notifierSize"))
})

describe("GpuSvmConfig: rejected mmStart (§2)", () => {
  it.effect("unaligned (4095) → mmStart", () =>
    Effect.gen(function*() {
      const e = yield* rejects({ ...BASE, mmStart: 4095 }, "mmStart")
      assert.include(e.reason, "4096")
    }))
  it.effect("unaligned (1) → mmStart", () => rejects({ ...BASE, mmStart: 1 }, "mmStart"))
  it.effect("negative (-4096) → mmStart", () => rejects({ ...BASE, mmStart: -4096 }, "mmStart"))
  it.effect("not a safe integer (2^60) → mmStart", () => rejects({ ...BASE, mmStart: 2 ** 60, mmRange: 4096 }, "mmStart"))
  it.effect("not a safe integer (2^53) → mmStart", () => rejects({ ...BASE, mmStart: TOP, mmRange: 4096 }, "mmStart"))
  it.effect("fractional (4096.5) → mmStart", () => rejects({ ...BASE, mmStart: 4096.5 }, "mmStart"))
  it.effect("NaN → mmStart", () => rejects({ ...BASE, mmStart: NaN }, "mmStart"))
  it.effect("Infinity → mmStart", () => rejects({ ...BASE, mmStart: Infinity }, "mmStart"))
  it.effect("wrong type: boolean → mmStart", () => rejects({ ...BASE, mmStart: true }, "mmStart"))
  it.effect("wrong type: bigint → mmStart", () => rejects({ ...BASE, mmStart: 4096n }, "mmStart"))
})

describe("GpuSvmConfig: rejected mmRange (§2)", () => {
  it.effect("empty (0) → mmRange", () => rejects({ ...BASE, mmRange: 0 }, "mmRange"))
  it.effect("negative → mmRange", () => rejects({ ...BASE, mmRange: -4096 }, "mmRange"))
  it.effect("not a page multiple (4097) → mmRange", () =>
    Effect.gen(function*() {
      const e = yield* rejects({ ...BASE, mmRange: 4097 }, "mmRange")
      assert.include(e.reason, "4096")
    }))
  it.effect("not a page multiple (2 MiB + 1) → mmRange", () => rejects({ ...BASE, mmRange: 2 * MiB + 1 }, "mmRange"))
  it.effect("not a safe integer (2^60) → mmRange", () => rejects({ ...BASE, mmRange: 2 ** 60 }, "mmRange"))
  it.effect("mmStart + mmRange past 2^53 (2^52 + 2^52 + 4096) → mmRange", () =>
    Effect.gen(function*() {
      const e = yield* rejects({ ...BASE, mmStart: 2 ** 52, mmRange: 2 ** 52 + 4096 }, "mmRange")
      assert.include(e.reason, "2^53")
    }))
  it.effect("mmStart + mmRange past 2^53 by one page at the top → mmRange", () =>
    rejects({ ...BASE, mmStart: TOP - 4096, mmRange: 8192 }, "mmRange"))
  it.effect("wrong type: string → mmRange", () => rejects({ ...BASE, mmRange: "1G" }, "mmRange"))
})

describe("GpuSvmConfig: other fields and input shape", () => {
  it.effect("empty name → name", () => rejects({ ...BASE, name: "" }, "name"))
  it.effect("wrong type: number name → name", () => rejects({ ...BASE, name: 5 }, "name"))
  it.effect("empty devicePrivateOwner → devicePrivateOwner", () =>
    rejects({ ...BASE, devicePrivateOwner: "" }, "devicePrivateOwner"))
  it.effect("wrong type: number devicePrivateOwner → devicePrivateOwner", () =>
    rejects({ ...BASE, devicePrivateOwner: 7 }, "devicePrivateOwner"))
  it.effect("negative hmmTimeoutMs → hmmTimeoutMs", () => rejects({ ...BASE, hmmTimeoutMs: -1 }, "hmmTimeoutMs"))
  it.effect("infinite hmmTimeoutMs → hmmTimeoutMs", () => rejects({ ...BASE, hmmTimeoutMs: Infinity }, "hmmTimeoutMs"))
  for (const input of [null, undefined, 42, "config", true, [BASE], [] as ReadonlyArray<unknown>]) {
    it.effect(`non-object input ${show(input)} → <root>`, () => rejects(input, "<root>"))
  }
  it.effect("shape errors are reported before semantic ones (first bad field in field order)", () =>
    Effect.gen(function*() {
      // mmStart is unaligned (semantic), notifierSize is a string (shape): the shape error wins
      yield* rejects({ ...BASE, mmStart: 4095, notifierSize: "x" }, "notifierSize")
      // two semantic errors: mmStart is checked before chunkSizes
      yield* rejects({ ...BASE, mmStart: 4095, chunkSizes: [4096, 8192] }, "mmStart")
    }))
})

describe("GpuSvmConfig: accepted configs and defaults", () => {
  it.effect("§11.14 init accepts chunk sizes larger than the notifier size (they are never chosen)", () =>
    Effect.gen(function*() {
      const c = yield* C.decode({ ...BASE, notifierSize: 1 * MiB, chunkSizes: [2 * MiB, 64 * KiB, 4096] })
      assert.deepStrictEqual(c.chunkSizes, [2 * MiB, 64 * KiB, 4096])
      assert.strictEqual(c.notifierSize, 1 * MiB)
    }))

  it.effect("§11.16 kernel profile: default \"7.0\", \"6.17\" accepted, anything else → kernel", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* C.decode({ ...BASE })).kernel, "7.0")
      assert.strictEqual((yield* C.decode({ ...BASE, kernel: "6.17" })).kernel, "6.17")
      yield* rejects({ ...BASE, kernel: "6.1" }, "kernel")
      yield* rejects({ ...BASE, kernel: 617 }, "kernel")
    }))

  it.effect("accepts a full valid config unchanged", () =>
    Effect.gen(function*() {
      const input = { ...BASE, devicePrivateOwner: "xe-owner", hmmTimeoutMs: 250 }
      const c = yield* C.decode(input)
      assert.deepStrictEqual(c, {
        name: "xe",
        mmStart: 0,
        mmRange: 2 ** 47,
        notifierSize: 512 * MiB,
        chunkSizes: [2 * MiB, 64 * KiB, 4096],
        devicePrivateOwner: "xe-owner",
        hmmTimeoutMs: 250,
        kernel: "7.0"
      })
      assert.strictEqual(C.mmEnd(c), 2 ** 47)
    }))

  it.effect("accepts the minimal geometry: notifierSize 4096, chunkSizes [4096]", () =>
    Effect.gen(function*() {
      const c = yield* C.decode({ mmStart: 4096, mmRange: 4096, notifierSize: 4096, chunkSizes: [4096] })
      assert.strictEqual(c.notifierSize, 4096)
      assert.deepStrictEqual(c.chunkSizes, [4096])
      assert.strictEqual(C.mmEnd(c), 8192)
    }))

  it.effect("accepts a space ending exactly at 2^53 (mmStart = 2^53 - 1 GiB, mmRange = 1 GiB)", () =>
    Effect.gen(function*() {
      const c = yield* C.decode({ mmStart: TOP - 1024 * MiB, mmRange: 1024 * MiB, notifierSize: 2 ** 30, chunkSizes: [2 ** 30, 4096] })
      assert.strictEqual(C.mmEnd(c), TOP)
    }))

  it.effect("accepts large power-of-two sizes (notifier 2^52, chunk 2^40)", () =>
    Effect.gen(function*() {
      const c = yield* C.decode({ ...BASE, notifierSize: 2 ** 52, chunkSizes: [2 ** 40, 2 * MiB, 4096] })
      assert.strictEqual(c.notifierSize, 2 ** 52)
    }))

  it.effect("fills omitted fields from DEFAULTS (mmRange given)", () =>
    Effect.gen(function*() {
      const c = yield* C.decode({ mmRange: 2 ** 40 })
      assert.strictEqual(c.name, C.DEFAULTS.name)
      assert.strictEqual(c.mmStart, C.DEFAULTS.mmStart)
      assert.strictEqual(c.mmRange, 2 ** 40)
      assert.strictEqual(c.notifierSize, C.DEFAULTS.notifierSize)
      assert.deepStrictEqual(c.chunkSizes, C.DEFAULTS.chunkSizes)
      assert.strictEqual(c.hmmTimeoutMs, C.DEFAULTS.hmmTimeoutMs)
      assert.isUndefined(c.devicePrivateOwner)
    }))

  it.effect("omitted mmRange extends the space to 2^53 from a non-zero mmStart", () =>
    Effect.gen(function*() {
      const c = yield* C.decode({ mmStart: 2 ** 32 })
      assert.strictEqual(c.mmRange, TOP - 2 ** 32)
      assert.strictEqual(C.mmEnd(c), TOP)
    }))

  it.effect("explicit undefined fields are treated as omitted", () =>
    Effect.gen(function*() {
      const c = yield* C.decode({ mmRange: 2 ** 40, notifierSize: undefined, name: undefined })
      assert.strictEqual(c.notifierSize, C.DEFAULTS.notifierSize)
      assert.strictEqual(c.name, C.DEFAULTS.name)
    }))

  it.effect("decodeExit succeeds with the same value as decode", () =>
    Effect.gen(function*() {
      const viaEffect = yield* C.decode(BASE)
      const exit = C.decodeExit(BASE)
      assert.isTrue(Exit.isSuccess(exit))
      if (Exit.isSuccess(exit)) assert.deepStrictEqual(exit.value, viaEffect)
    }))

  it("violation() returns undefined for a decoded config and names the field for a broken one", () => {
    const exit = C.decodeExit(BASE)
    assert.isTrue(Exit.isSuccess(exit))
    if (!Exit.isSuccess(exit)) return
    assert.isUndefined(C.violation(exit.value))
    const broken = C.violation({ ...exit.value, notifierSize: 3 * 4096 })
    assert.strictEqual(broken?.field, "notifierSize")
  })

  // DEFAULTS.mmRange is ADDRESS_LIMIT (2^53), so filling an empty input yields
  // mmRange = 2^53, which violation() then rejects as "not a safe integer".
  it.effect("§2 an empty input {} decodes to the defaults (whole space [0, 2^53))", () =>
    Effect.gen(function*() {
      const c = yield* C.decode({})
      assert.strictEqual(c.mmStart, 0)
      assert.strictEqual(C.mmEnd(c), TOP)
      assert.deepStrictEqual(c.chunkSizes, C.DEFAULTS.chunkSizes)
    }))

  // Same root cause on the explicit path: [0, 2^53) is the whole user space
  // (Address.ts admits 2^53 as an exclusive end, and mmStart + mmRange <= 2^53
  // holds), but mmRange = 2^53 fails the Schema.isInt shape check.
  it.effect("§2 mmStart 0 + mmRange 2^53 (the whole space, end exactly 2^53) is accepted", () =>
    Effect.gen(function*() {
      const c = yield* C.decode({ ...BASE, mmStart: 0, mmRange: TOP })
      assert.strictEqual(C.mmEnd(c), TOP)
    }))
})
