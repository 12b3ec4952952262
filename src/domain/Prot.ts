/**
 * Page protection of a VMA (`PROT_READ | PROT_WRITE | PROT_EXEC`), as booleans.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * Schema of a protection: three booleans.
 *
 * @category schemas
 */
export const Prot = Schema.Struct({
  read: Schema.Boolean,
  write: Schema.Boolean,
  exec: Schema.Boolean
})

/**
 * A VMA's protection (`vm_flags & (VM_READ | VM_WRITE | VM_EXEC)`).
 *
 * @category models
 */
export type Prot = typeof Prot.Type

/**
 * `PROT_NONE`: any access faults (`EFAULT` from hmm_range_fault).
 *
 * @category constants
 */
export const PROT_NONE: Prot = { read: false, write: false, exec: false }
/**
 * `PROT_READ`.
 *
 * @category constants
 */
export const PROT_READ: Prot = { read: true, write: false, exec: false }
/**
 * `PROT_READ | PROT_WRITE`: the default for `mmap`.
 *
 * @category constants
 */
export const PROT_RW: Prot = { read: true, write: true, exec: false }
/**
 * `PROT_READ | PROT_WRITE | PROT_EXEC`.
 *
 * @category constants
 */
export const PROT_RWX: Prot = { read: true, write: true, exec: true }

/**
 * The short spellings scenario files use for a protection.
 *
 * @category models
 */
export type ProtName = "none" | "r" | "rw" | "rwx"

/**
 * Parses a scenario-file protection name.
 *
 * @category functions
 */
export const fromName = (name: ProtName): Prot =>
  name === "none" ? PROT_NONE : name === "r" ? PROT_READ : name === "rw" ? PROT_RW : PROT_RWX

/**
 * Renders a protection like `/proc/<pid>/maps` does (`rw-`).
 *
 * @category functions
 */
export const toString = (p: Prot): string => `${p.read ? "r" : "-"}${p.write ? "w" : "-"}${p.exec ? "x" : "-"}`

/**
 * Structural equality of two protections.
 *
 * @category functions
 */
export const equals = (a: Prot, b: Prot): boolean => a.read === b.read && a.write === b.write && a.exec === b.exec
