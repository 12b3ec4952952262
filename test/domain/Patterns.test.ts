/**
 * Scenario patterns (scenarios.md "pattern p: byte i of the buffer holds (p + i) % 256"): the
 * filled buffer and the shared-ramp view give the same bytes as the definition.
 */
import { assert, describe, it } from "@effect/vitest"
import { fillPattern, PATTERN_VIEW_MAX, patternByte, patternView } from "../../src/domain/scenario/Patterns.ts"

const definition = (p: number, offset: number, length: number) => Uint8Array.from({ length }, (_, i) => patternByte(p, offset + i))

describe("scenario patterns", () => {
  it("fillPattern and patternView give (p + offset + i) % 256 for random patterns, offsets and lengths", () => {
    let x = 12345
    const rand = (n: number) => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0
      return x % n
    }
    for (let k = 0; k < 200; k++) {
      const p = rand(256)
      const offset = rand(1 << 20)
      const length = rand(3000)
      const want = definition(p, offset, length)
      assert.deepStrictEqual(fillPattern(new Uint8Array(length), p, offset), want)
      assert.deepStrictEqual(patternView(p, offset, length), want)
    }
  })

  it("patternView serves up to PATTERN_VIEW_MAX bytes from the ramp and a fresh buffer past it", () => {
    const at = patternView(7, 3, PATTERN_VIEW_MAX)
    assert.strictEqual(at.length, PATTERN_VIEW_MAX)
    assert.strictEqual(at[PATTERN_VIEW_MAX - 1], patternByte(7, 3 + PATTERN_VIEW_MAX - 1))
    const past = patternView(7, 3, PATTERN_VIEW_MAX + 1)
    assert.strictEqual(past.length, PATTERN_VIEW_MAX + 1)
    assert.notStrictEqual(past.buffer, at.buffer)
    assert.strictEqual(past[PATTERN_VIEW_MAX], patternByte(7, 3 + PATTERN_VIEW_MAX))
  })
})
