/**
 * A virtual memory area (`struct vm_area_struct`): `[start, end)` with one
 * protection and one backing kind.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { Prot } from "./Prot.ts"

/**
 * Schema of a VMA backing kind.
 *
 * @category schemas
 */
export const VmaKind = Schema.Literals(["anonymous", "file", "hugetlb", "special"])

/**
 * What backs a VMA: `anonymous` (malloc / MAP_ANONYMOUS), `file` (a mapped file),
 * `hugetlb` (`is_vm_hugetlb_page`), `special` (VM_PFNMAP/VM_IO: never mirrored).
 *
 * @category models
 */
export type VmaKind = typeof VmaKind.Type

/**
 * Schema of a VMA.
 *
 * @category schemas
 */
export const Vma = Schema.Struct({
  start: Schema.Number,
  end: Schema.Number,
  prot: Prot,
  kind: VmaKind,
  shared: Schema.Boolean,
  name: Schema.optionalKey(Schema.String)
})

/**
 * A VMA: `vm_start`, `vm_end` (exclusive), protection, kind, `VM_SHARED`, and an optional name.
 *
 * @category models
 */
export type Vma = typeof Vma.Type

/**
 * `vma_is_anonymous(vma) && !is_vm_hugetlb_page(vma)`: may this VMA's pages
 * migrate to device memory? MAP_SHARED|MAP_ANONYMOUS is shmem, not anonymous
 * (kernel-semantics §11.7), so a shared VMA never migrates.
 *
 * @category functions
 */
export const canMigrateToDevmem = (vma: Vma): boolean => vma.kind === "anonymous" && !vma.shared

/**
 * Does the VMA contain `addr`?
 *
 * @category functions
 */
export const contains = (vma: Vma, addr: number): boolean => vma.start <= addr && addr < vma.end
