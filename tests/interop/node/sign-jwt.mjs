// Signs a JWT with a private JWK, as a provider holding that key would: the tests' way to
// make tokens a real provider would not issue on request (expired, unverified email).
// usage: node sign-jwt.mjs KEY_FILE CLAIMS_JSON   (prints the token; the header names the key)
import fs from "node:fs";
import { SignJWT, importJWK } from "jose";

const [keyFile, claims] = process.argv.slice(2);
const jwk = JSON.parse(fs.readFileSync(keyFile, "utf8"));
const key = await importJWK(jwk, jwk.alg);
const token = await new SignJWT(JSON.parse(claims))
  .setProtectedHeader({ alg: jwk.alg, kid: jwk.kid, typ: "at+jwt" })
  .sign(key);
process.stdout.write(token);
