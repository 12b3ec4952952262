/**
 * Argument checking of the `Cpu` system calls, shared by both machines so that a
 * bad argument is the same typed `InvalidArgument` (naming the call and the
 * argument) whichever machine runs it, and is rejected before anything changes.
 *
 * @since 0.1.0
 */
import { ADDRESS_LIMIT, isAddress, overlaps, PAGE_SIZE } from "../../domain/Address.ts"
import { InvalidArgument } from "../../domain/Errors.ts"
import type { Prot } from "../../domain/Prot.ts"
import type { MremapOptions } from "../../services/Cpu.ts"

/** An `InvalidArgument` with an optional address. */
export const invalid = (reason: string, addr?: number): InvalidArgument =>
  addr === undefined ? new InvalidArgument({ reason }) : new InvalidArgument({ reason, addr })

/** Is `p` a well-formed `Prot` (three booleans)? */
export const isProt = (p: unknown): p is Prot =>
  typeof p === "object" && p !== null &&
  typeof (p as Prot).read === "boolean" && typeof (p as Prot).write === "boolean" &&
  typeof (p as Prot).exec === "boolean"

/** Validates `addr`/`length` of a window call: page-aligned address, positive page-multiple length, end ≤ 2^53. */
export const checkWindow = (call: string, addr: number, length: number): InvalidArgument | undefined => {
  if (!isAddress(addr)) return invalid(`${call}: addr is not an address in [0, 2^53)`)
  if (addr % PAGE_SIZE !== 0) return invalid(`${call}: addr is not page aligned`, addr)
  if (!Number.isSafeInteger(length) || length <= 0) return invalid(`${call}: length must be a positive integer`, addr)
  if (length % PAGE_SIZE !== 0) return invalid(`${call}: length is not a multiple of 4096`, addr)
  if (addr + length > ADDRESS_LIMIT) return invalid(`${call}: addr + length is past 2^53`, addr)
  return undefined
}

/** Validates the arguments of `mremap(addr, oldLength, newLength, o)` (what can be checked without the VMAs). */
export const checkMremap = (addr: number, oldLength: number, newLength: number, o?: MremapOptions): InvalidArgument | undefined => {
  const e1 = checkWindow("mremap", addr, oldLength)
  if (e1 !== undefined) return e1
  if (!Number.isSafeInteger(newLength) || newLength <= 0 || newLength % PAGE_SIZE !== 0) {
    return invalid("mremap: newLength must be a positive multiple of 4096", addr)
  }
  const newAddr = o?.newAddr
  if (newAddr !== undefined) {
    const e2 = checkWindow("mremap", newAddr, newLength)
    if (e2 !== undefined) return invalid(e2.reason.replace("addr", "newAddr"), newAddr)
    if (overlaps(newAddr, newAddr + newLength, addr, addr + oldLength)) return invalid("mremap: newAddr window overlaps the old range", newAddr)
  }
  if (o?.dontUnmap === true && oldLength !== newLength) return invalid("mremap: dontUnmap needs newLength == oldLength", addr)
  return undefined
}
