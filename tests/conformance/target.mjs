// The gateway under test and the token to present to it (see preload.mjs).
export const origin = process.env.MCPGATE_ORIGIN;
export const token = process.env.MCPGATE_TOKEN;
if (!origin || !token) {
  throw new Error('the conformance preload needs MCPGATE_ORIGIN and MCPGATE_TOKEN');
}
