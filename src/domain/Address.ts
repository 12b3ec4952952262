/**
 * Address and alignment helpers.
 *
 * Addresses are JS numbers holding safe integers: user space is `[0, 2^53)`, and
 * `2^53` itself is admitted only as an exclusive end. All alignment is plain
 * arithmetic (`a - a % s`), never 32-bit bitwise operations, so it is exact up to
 * the top of the range. Mirrors the kernel's `ALIGN`, `ALIGN_DOWN`, `IS_ALIGNED`,
 * `PAGE_SIZE`, `npages_in_range`.
 *
 * Pure functions; no locking.
 *
 * @since 0.1.0
 */

/**
 * Size of a base page (4 KiB), the kernel's `PAGE_SIZE` / `SZ_4K`.
 *
 * @category constants
 */
export const PAGE_SIZE = 4096

/**
 * Size of a PMD-level huge page (2 MiB), `SZ_2M`; a huge page has order 9.
 *
 * @category constants
 */
export const HUGE_PAGE_SIZE = 2 * 1024 * 1024

/**
 * Order of a 2 MiB huge page in 4 KiB pages (`HPAGE_PMD_ORDER`).
 *
 * @category constants
 */
export const HUGE_PAGE_ORDER = 9

/**
 * The exclusive upper bound of every address: `2^53`. Addresses are `< ADDRESS_LIMIT`; ends are `<= ADDRESS_LIMIT`.
 *
 * @category constants
 */
export const ADDRESS_LIMIT = 2 ** 53

/**
 * Is `a` a whole number in `[0, 2^53)`, i.e. a valid user address?
 *
 * @category functions
 */
export const isAddress = (a: number): boolean => Number.isSafeInteger(a) && a >= 0

/**
 * Is `a` a valid exclusive end: a whole number in `[0, 2^53]`?
 *
 * @category functions
 */
export const isEnd = (a: number): boolean => Number.isInteger(a) && a >= 0 && a <= ADDRESS_LIMIT

/**
 * Is `[start, end)` a non-empty, well-formed address window?
 *
 * @category functions
 */
export const isWindow = (start: number, end: number): boolean => isAddress(start) && isEnd(end) && start < end

/**
 * Is `n` a positive power of two (exact for any safe integer; no bit ops)?
 *
 * @category functions
 */
export const isPowerOfTwo = (n: number): boolean => {
  if (!Number.isSafeInteger(n) || n <= 0) return false
  let v = n
  while (v % 2 === 0) v = v / 2
  return v === 1
}

/**
 * `ALIGN_DOWN(a, size)`: the greatest multiple of `size` that is `<= a`. `size` must be positive.
 *
 * @category functions
 */
export const alignDown = (a: number, size: number): number => a - (a % size)

/**
 * `ALIGN(a, size)`: the least multiple of `size` that is `>= a`. `size` must be positive.
 *
 * @category functions
 */
export const alignUp = (a: number, size: number): number => {
  const r = a % size
  return r === 0 ? a : a - r + size
}

/**
 * `IS_ALIGNED(a, size)`.
 *
 * @category functions
 */
export const isAligned = (a: number, size: number): boolean => a % size === 0

/**
 * Is `a` a multiple of the 4 KiB page size?
 *
 * @category functions
 */
export const isPageAligned = (a: number): boolean => a % PAGE_SIZE === 0

/**
 * Page index of an address (`a >> PAGE_SHIFT`, done arithmetically).
 *
 * @category functions
 */
export const pageIndex = (a: number): number => Math.floor(a / PAGE_SIZE)

/**
 * `npages_in_range(start, end)`: number of 4 KiB pages in `[start, end)` (both page aligned).
 *
 * @category functions
 */
export const npages = (start: number, end: number): number => (end - start) / PAGE_SIZE

/**
 * Bytes covered by a PFN/device-address entry of the given order (`PAGE_SIZE << order`).
 *
 * @category functions
 */
export const orderBytes = (order: number): number => PAGE_SIZE * orderPages(order)

/**
 * Number of base pages in an entry of the given order (`1 << order`). A shift
 * where the order is a small integer: `2 ** order` yields a boxed heap number
 * in unoptimised code, and one stored into a frame or page-table field makes
 * V8 box that field in every object of its shape (issue #16).
 *
 * @category functions
 */
export const orderPages = (order: number): number => ((order | 0) === order && order >= 0 && order < 31 ? 1 << order : 2 ** order)

/**
 * Do `[aStart, aEnd)` and `[bStart, bEnd)` overlap?
 *
 * @category functions
 */
export const overlaps = (aStart: number, aEnd: number, bStart: number, bEnd: number): boolean =>
  aStart < bEnd && bStart < aEnd

/**
 * `0x…` rendering of an address for messages. A value that is no address — not
 * a non-negative integer (`NaN`, `-1`, `Infinity`, `0.5`) — is printed as given
 * (`String(a)`), never as a misleading `0xNaN` / `0x-1` / `0x0.8`.
 *
 * @category functions
 */
export const hex = (a: number): string => (Number.isInteger(a) && a >= 0 ? `0x${a.toString(16)}` : String(a))
