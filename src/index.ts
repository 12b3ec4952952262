/**
 * gpusvm — an Effect 4 rewrite of the Linux DRM GPU SVM layer.
 *
 * The public entry point: domain values, errors and (as they land) the services,
 * layers and programs.
 *
 * @since 0.1.0
 */
export const VERSION = "0.1.0"
