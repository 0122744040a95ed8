// An OpenID Provider for the gateway's external identity tests: `oidc-provider` (a certified
// OpenID Provider implementation) on loopback, with its development sign-in pages (any login
// name signs in; the account's email is the login name).
//
// env: PORT            the port to listen on (prints {"port": N} once it listens)
//      KEY_DIR         a folder of signing keys, kept across restarts (a key rotation restarts
//                      the provider with another KIDS)
//      KIDS            comma-separated key ids published in the JWKS, the first signs; a missing
//                      key is generated (RSA 2048) and saved in KEY_DIR
//      CLIENTS         JSON array of client metadata (client_id, client_secret, redirect_uris…)
//      GROUPS          JSON object: login name -> groups claim
//      ACCESS_TOKEN_TTL  seconds a resource's access token lives (default 600)
//      REGISTRATION    "1": clients may register themselves (RFC 7591)
//      TRUSTED_ISSUER, TRUSTED_KEY  token exchange (RFC 8693): a JWT of this issuer, signed with
//                      the key of this PEM file (RS256) and meant for this provider, is exchanged
//                      for an access token of its subject
//
// Access tokens asked for with a resource indicator are JWTs for that resource (aud), carrying
// the account's email and groups.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { importSPKI, jwtVerify } from "jose";
import Provider from "oidc-provider";

// stdout carries the one announcement line (its reader stops there): the provider's own
// notices go to stderr.
console.log = console.info = console.error;

const port = Number(process.env.PORT);
const keyDir = process.env.KEY_DIR;
const kids = process.env.KIDS.split(",");
const clients = JSON.parse(process.env.CLIENTS ?? "[]");
const groups = JSON.parse(process.env.GROUPS ?? "{}");
const accessTokenTTL = Number(process.env.ACCESS_TOKEN_TTL ?? "600");

fs.mkdirSync(keyDir, { recursive: true });
const keys = kids.map((kid) => {
  const file = path.join(keyDir, `${kid}.json`);
  if (!fs.existsSync(file)) {
    const { privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
    const jwk = { ...privateKey.export({ format: "jwk" }), kid, alg: "RS256", use: "sig" };
    fs.writeFileSync(file, JSON.stringify(jwk));
  }
  return JSON.parse(fs.readFileSync(file, "utf8"));
});

const claimsOf = (login) => ({
  sub: login,
  email: login,
  email_verified: true,
  name: `Test ${login.split("@")[0]}`,
  groups: groups[login] ?? [],
});

const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients,
  jwks: { keys },
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"], groups: ["groups"] },
  scopes: ["openid", "email", "profile", "groups", "offline_access", "mcp"],
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => claimsOf(sub) }),
  pkce: { required: () => true },
  // The ID token carries the claims its scopes ask for (email, name), as most providers do.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    registration: { enabled: process.env.REGISTRATION === "1" },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) => ({
        scope: "mcp",
        audience: resource,
        accessTokenFormat: "jwt",
        accessTokenTTL,
        jwt: { sign: { alg: "RS256" } },
      }),
    },
  },
  // Refresh tokens for whoever asked for offline_access, rotated at each use.
  issueRefreshToken: async (_ctx, client, code) =>
    client.grantTypeAllowed("refresh_token") && code.scopes.has("offline_access"),
  rotateRefreshToken: true,
  extraTokenClaims: async (_ctx, token) => {
    if (!token.accountId) return undefined;
    const { email, email_verified, groups: member } = claimsOf(token.accountId);
    return { email, email_verified, groups: member };
  },
});
provider.proxy = false;

if (process.env.TRUSTED_ISSUER) {
  const trusted = await importSPKI(fs.readFileSync(process.env.TRUSTED_KEY, "utf8"), "RS256");
  const refuse = (ctx, error, description) => {
    ctx.status = 400;
    ctx.body = { error, error_description: description };
  };
  provider.registerGrantType(
    "urn:ietf:params:oauth:grant-type:token-exchange",
    async (ctx) => {
      const { subject_token, subject_token_type, resource } = ctx.oidc.params;
      if (subject_token_type !== "urn:ietf:params:oauth:token-type:jwt") {
        return refuse(ctx, "invalid_request", "subject_token_type must be a JWT");
      }
      let subject;
      try {
        ({ payload: subject } = await jwtVerify(subject_token, trusted, {
          issuer: process.env.TRUSTED_ISSUER,
          audience: issuer,
          algorithms: ["RS256"],
        }));
      } catch (error) {
        return refuse(ctx, "invalid_grant", `the subject token is not accepted: ${error.code ?? error.message}`);
      }
      const { client } = ctx.oidc;
      const grant = new provider.Grant({ accountId: subject.sub, clientId: client.clientId });
      grant.addResourceScope(resource, "mcp");
      const grantId = await grant.save();
      const token = new provider.AccessToken({ accountId: subject.sub, client, grantId, scope: "mcp", gty: "token_exchange" });
      token.resourceServer = new provider.ResourceServer(resource, {
        scope: "mcp",
        audience: resource,
        accessTokenTTL,
        accessTokenFormat: "jwt",
        jwt: { sign: { alg: "RS256" } },
      });
      const value = await token.save();
      ctx.body = {
        access_token: value,
        issued_token_type: "urn:ietf:params:oauth:token-type:access_token",
        token_type: "Bearer",
        expires_in: token.expiration,
      };
    },
    ["subject_token", "subject_token_type", "resource", "audience", "scope", "requested_token_type"],
    ["resource", "audience"],
  );
}
const server = provider.listen(port, "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
