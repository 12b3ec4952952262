/**
 * Vitest configuration: one test worker per core. Vitest's default outside
 * watch mode is one fewer than the cores, which on the project's 2-core
 * machines runs the suite in a single worker; the suite is CPU-bound, so two
 * workers there nearly halve `npm test` (design.md: `npm test` stays well
 * under 5 minutes on 2 cores).
 */
import { availableParallelism } from "node:os"
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    maxWorkers: Math.max(availableParallelism(), 1)
  }
})
