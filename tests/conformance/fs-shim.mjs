// `node:fs` plus a `globSync` for Node < 22, good for the one use the conformance CLI makes of
// it: `globSync('**/<file name>', { cwd })`, every file of that name below `cwd`, as paths
// relative to it. Where Node has its own globSync, that one is used.
import fs from 'node:fs';
import path from 'node:path';

export * from 'node:fs';
export default fs;

function walk(root, dir, name, found) {
  for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const relative = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(root, relative, name, found);
    else if (entry.name === name) found.push(relative);
  }
  return found;
}

export const globSync =
  fs.globSync ??
  ((pattern, options = {}) => {
    const match = /^\*\*\/([^*?[\]{}/]+)$/.exec(pattern);
    if (!match) throw new Error(`fs-shim globSync supports only "**/<name>", not ${pattern}`);
    return walk(options.cwd ?? process.cwd(), '', match[1], []);
  });
