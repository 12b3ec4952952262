/** `Vma.canMigrateToDevmem` (kernel-semantics §11.7): only private anonymous memory migrates. */
import { assert, describe, it } from "@effect/vitest"
import { PROT_RW } from "../../src/domain/Prot.ts"
import { canMigrateToDevmem, type Vma } from "../../src/domain/Vma.ts"

const vma = (kind: Vma["kind"], shared: boolean): Vma => ({ start: 0x1000, end: 0x3000, prot: PROT_RW, kind, shared })

describe("Vma.canMigrateToDevmem", () => {
  it("§11.7 MAP_SHARED|MAP_ANONYMOUS is shmem and never migrates; private anonymous does; file and hugetlb never", () => {
    assert.isTrue(canMigrateToDevmem(vma("anonymous", false)))
    assert.isFalse(canMigrateToDevmem(vma("anonymous", true)))
    for (const kind of ["file", "hugetlb", "special"] as const) {
      assert.isFalse(canMigrateToDevmem(vma(kind, false)), kind)
      assert.isFalse(canMigrateToDevmem(vma(kind, true)), kind)
    }
  })
})
