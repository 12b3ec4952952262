import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Schema } from "effect"
import * as A from "../../src/domain/Address.ts"

// ---------------------------------------------------------------------------
// BigInt reference: exact at any magnitude, independent of float arithmetic.
// ---------------------------------------------------------------------------

const refAlignDown = (a: number, size: number): number => {
  const ba = BigInt(a)
  const bs = BigInt(size)
  return Number(ba - (ba % bs))
}
const refAlignUp = (a: number, size: number): number => {
  const ba = BigInt(a)
  const bs = BigInt(size)
  return Number(((ba + bs - 1n) / bs) * bs)
}

const TOP = 2 ** 53
const MiB = 1024 * 1024
const SIZES = [4096, 2 * MiB, 512 * MiB, 2 ** 52] as const
const TOP_ADDRS = [TOP - 1, TOP - 4096, TOP - 4097, TOP - 2 * MiB, TOP - 2 * MiB + 1, 2 ** 52, 2 ** 52 - 1, 2 ** 52 + 1] as const

describe("Address: alignment at the top of the 2^53 range", () => {
  it("alignDown / alignUp of 2^53 - 1 for 4 KiB, 2 MiB, 512 MiB, 2^52", () => {
    // 2^53 - 1 is one below a multiple of every power of two <= 2^53.
    for (const size of SIZES) {
      assert.strictEqual(A.alignDown(TOP - 1, size), TOP - size, `alignDown(2^53-1, ${size})`)
      assert.strictEqual(A.alignUp(TOP - 1, size), TOP, `alignUp(2^53-1, ${size})`)
      assert.isFalse(A.isAligned(TOP - 1, size), `isAligned(2^53-1, ${size})`)
    }
  })

  it("alignDown / alignUp of 2^53 - 4096 for 4 KiB, 2 MiB, 512 MiB, 2^52", () => {
    const a = TOP - 4096
    assert.strictEqual(A.alignDown(a, 4096), a)
    assert.strictEqual(A.alignUp(a, 4096), a)
    assert.isTrue(A.isAligned(a, 4096))
    assert.isTrue(A.isPageAligned(a))
    for (const size of [2 * MiB, 512 * MiB, 2 ** 52]) {
      assert.strictEqual(A.alignDown(a, size), TOP - size, `alignDown(2^53-4096, ${size})`)
      assert.strictEqual(A.alignUp(a, size), TOP, `alignUp(2^53-4096, ${size})`)
      assert.isFalse(A.isAligned(a, size))
    }
  })

  it("alignDown / alignUp of addresses near 2^53 and 2^52 agree with BigInt", () => {
    for (const a of TOP_ADDRS) {
      for (const size of SIZES) {
        assert.strictEqual(A.alignDown(a, size), refAlignDown(a, size), `alignDown(${a}, ${size})`)
        assert.strictEqual(A.alignUp(a, size), refAlignUp(a, size), `alignUp(${a}, ${size})`)
      }
    }
  })

  it("the exclusive end 2^53 is aligned and a fixed point of alignUp / alignDown", () => {
    for (const size of SIZES) {
      assert.strictEqual(A.alignUp(TOP, size), TOP)
      assert.strictEqual(A.alignDown(TOP, size), TOP)
      assert.isTrue(A.isAligned(TOP, size))
    }
    // alignUp(addr + 1) — the chunk-size window end — of the last address
    assert.strictEqual(A.alignUp(TOP - 1 + 1, 2 * MiB), TOP)
  })

  it("pageIndex / npages / orderBytes at the top", () => {
    assert.strictEqual(A.pageIndex(TOP - 1), 2 ** 41 - 1)
    assert.strictEqual(A.pageIndex(TOP - 4096), 2 ** 41 - 1)
    assert.strictEqual(A.pageIndex(TOP - 4097), 2 ** 41 - 2)
    assert.strictEqual(A.npages(TOP - 2 * MiB, TOP), 512)
    assert.strictEqual(A.npages(0, TOP), 2 ** 41)
    assert.strictEqual(A.orderBytes(A.HUGE_PAGE_ORDER), A.HUGE_PAGE_SIZE)
    assert.strictEqual(A.orderPages(A.HUGE_PAGE_ORDER), 512)
    assert.strictEqual(A.orderBytes(41), TOP)
  })

  it("hex renders the top address exactly", () => {
    assert.strictEqual(A.hex(TOP - 1), "0x1fffffffffffff")
    assert.strictEqual(A.hex(TOP - 4096), "0x1ffffffffff000")
    assert.strictEqual(A.hex(0), "0x0")
  })
})

describe("Address: isPowerOfTwo", () => {
  it("accepts every power of two up to 2^52", () => {
    for (let e = 0; e <= 52; e++) assert.isTrue(A.isPowerOfTwo(2 ** e), `2^${e}`)
  })

  it("rejects non-powers, including neighbours of 2^52 and 2^53 - 1", () => {
    const bad = [0, -1, -4096, 3, 6, 4095, 4097, 12288, 2 ** 52 - 1, 2 ** 52 + 1, 2 ** 52 + 2 ** 51, TOP - 1, 0.5, 1.5, 4096.5, NaN, Infinity, -Infinity]
    for (const n of bad) assert.isFalse(A.isPowerOfTwo(n), String(n))
  })

  it("agrees with a BigInt popcount over random safe integers", () => {
    const popcount1 = (n: number): boolean => {
      let b = BigInt(n)
      let c = 0
      while (b > 0n) {
        c += Number(b & 1n)
        b >>= 1n
      }
      return c === 1
    }
    let x = 0x9e3779b9
    for (let i = 0; i < 2000; i++) {
      // xorshift32 for cheap deterministic variety, scaled into [1, 2^53)
      x ^= x << 13
      x ^= x >>> 17
      x ^= x << 5
      const n = Math.max(1, Math.floor(((x >>> 0) / 2 ** 32) * 2 ** (i % 54)))
      assert.strictEqual(A.isPowerOfTwo(n), popcount1(n), String(n))
    }
  })
})

describe("Address: isAddress / isEnd / isWindow boundaries", () => {
  it("isAddress is [0, 2^53) integers", () => {
    for (const a of [0, 1, 4096, TOP - 4096, TOP - 1]) assert.isTrue(A.isAddress(a), String(a))
    for (const a of [-1, TOP, TOP + 2, 2 ** 60, 0.5, 2 ** 40 + 0.5, NaN, Infinity]) assert.isFalse(A.isAddress(a), String(a))
  })

  it("isEnd is [0, 2^53] integers (2^53 admitted as an exclusive end only)", () => {
    for (const a of [0, 1, TOP - 1, TOP]) assert.isTrue(A.isEnd(a), String(a))
    for (const a of [-1, TOP + 2, 2 ** 54, 0.5, NaN, Infinity]) assert.isFalse(A.isEnd(a), String(a))
  })

  it("isWindow needs start an address, end an end, start < end", () => {
    assert.isTrue(A.isWindow(0, 1))
    assert.isTrue(A.isWindow(TOP - 4096, TOP))
    assert.isTrue(A.isWindow(TOP - 1, TOP))
    assert.isTrue(A.isWindow(0, TOP))
    assert.isFalse(A.isWindow(TOP, TOP), "start 2^53 is not an address")
    assert.isFalse(A.isWindow(4096, 4096), "empty")
    assert.isFalse(A.isWindow(8192, 4096), "reversed")
    assert.isFalse(A.isWindow(-4096, 4096), "negative start")
    assert.isFalse(A.isWindow(TOP - 4096, TOP + 4096), "end past 2^53")
  })

  it("overlaps is half-open on both sides", () => {
    assert.isTrue(A.overlaps(0, 4096, 4095, 8192))
    assert.isFalse(A.overlaps(0, 4096, 4096, 8192))
    assert.isFalse(A.overlaps(4096, 8192, 0, 4096))
    assert.isTrue(A.overlaps(TOP - 4096, TOP, TOP - 1, TOP))
    assert.isTrue(A.overlaps(0, TOP, 12288, 16384))
  })
})

// ---------------------------------------------------------------------------
// property: alignDown / alignUp against the BigInt reference
// ---------------------------------------------------------------------------

const SafeAddr = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: TOP - 1 }))
const Exponent = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 52 }))
// Addresses close to the top, where rounding errors would first show.
const NearTop = Arbitrary.map(
  Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 2 ** 32 }))),
  (d) => TOP - d
)

describe("Address: properties", () => {
  it.prop(
    "alignDown / alignUp / isAligned match BigInt over random safe integers and power-of-two sizes",
    { a: SafeAddr, e: Exponent, top: NearTop },
    ({ a, e, top }) => {
      const size = 2 ** e
      for (const x of [a, top]) {
        const down = A.alignDown(x, size)
        const up = A.alignUp(x, size)
        assert.strictEqual(down, refAlignDown(x, size), `alignDown(${x}, 2^${e})`)
        assert.strictEqual(up, refAlignUp(x, size), `alignUp(${x}, 2^${e})`)
        assert.strictEqual(A.isAligned(x, size), BigInt(x) % BigInt(size) === 0n, `isAligned(${x}, 2^${e})`)
        assert.isTrue(down <= x && x <= up && up - down <= size, "bracket")
        assert.isTrue(A.isEnd(up), `alignUp(${x}, 2^${e}) = ${up} is a valid end`)
      }
    },
    { arbitrary: { runs: 2000 } }
  )
})

describe("Address.hex: addresses in hex, anything else as given (#18)", () => {
  it("§3.1 hex renders non-negative integers as 0x… and NaN, -1, ±Infinity, 0.5, -0.5 as given", () => {
    assert.strictEqual(A.hex(0), "0x0")
    assert.strictEqual(A.hex(2 ** 53 - 1), "0x1fffffffffffff")
    assert.strictEqual(A.hex(2 ** 53), "0x20000000000000")
    for (const [v, s] of [[NaN, "NaN"], [-1, "-1"], [Infinity, "Infinity"], [-Infinity, "-Infinity"], [0.5, "0.5"], [-0.5, "-0.5"]] as const) {
      assert.strictEqual(A.hex(v), s)
    }
  })
})
