// Module resolve hook (see preload.mjs): inside the conformance package, `fs` resolves to
// fs-shim.mjs (adds `globSync` on Node < 22) and `undici` to undici-shim.mjs (adds the
// gateway's bearer token).
const shims = {
  fs: new URL('./fs-shim.mjs', import.meta.url).href,
  'node:fs': new URL('./fs-shim.mjs', import.meta.url).href,
  undici: new URL('./undici-shim.mjs', import.meta.url).href,
};

export async function resolve(specifier, context, nextResolve) {
  const fromConformance = context.parentURL?.includes('/@modelcontextprotocol/conformance/');
  if (fromConformance && Object.hasOwn(shims, specifier)) {
    return { url: shims[specifier], shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
