// A local stand-in for the Swagger Petstore (https://petstore.swagger.io/v2): it serves the
// published description shipped in @readme/oas-examples (3.0/yaml/petstore.yaml) at
// /openapi.yaml and answers its pet, store and user operations under /v2 from memory, the way
// the public service does (api_key "special-key" where the document asks for it). It prints
// {"port": N} once it listens, and the requests it served at GET /_seen.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";

const documentPath = new URL("./node_modules/@readme/oas-examples/3.0/yaml/petstore.yaml", import.meta.url);
const description = readFileSync(documentPath, "utf8");
const pets = new Map();
const orders = new Map();
const seen = [];

function send(response, status, body, type = "application/json") {
  response.writeHead(status, { "content-type": type });
  response.end(type === "application/json" ? JSON.stringify(body) : body);
}

function readBody(request) {
  return new Promise((resolve) => {
    let text = "";
    request.on("data", (chunk) => (text += chunk));
    request.on("end", () => {
      try {
        resolve(text ? JSON.parse(text) : undefined);
      } catch {
        resolve(null);
      }
    });
  });
}

const server = createServer(async (request, response) => {
  const url = new URL(request.url, "http://petstore");
  const path = url.pathname;
  const body = await readBody(request);
  if (path !== "/_seen") seen.push({ method: request.method, path, query: url.search, body, api_key: request.headers["api_key"] ?? null });
  const keyed = () => request.headers["api_key"] === "special-key";
  let match;
  if (request.method === "GET" && path === "/openapi.yaml") {
    return send(response, 200, description, "application/yaml");
  }
  if (request.method === "GET" && path === "/_seen") {
    return send(response, 200, seen);
  }
  if ((request.method === "POST" || request.method === "PUT") && path === "/v2/pet") {
    if (!body || typeof body.name !== "string" || !Array.isArray(body.photoUrls)) {
      return send(response, 405, { code: 405, type: "error", message: "Invalid input" });
    }
    const pet = { id: body.id ?? pets.size + 1, status: "available", tags: [], ...body };
    pets.set(String(pet.id), pet);
    return send(response, 200, pet);
  }
  if (request.method === "GET" && path === "/v2/pet/findByStatus") {
    const wanted = url.searchParams.getAll("status").flatMap((s) => s.split(","));
    return send(response, 200, [...pets.values()].filter((pet) => wanted.includes(pet.status)));
  }
  if ((match = path.match(/^\/v2\/pet\/(\d+)$/))) {
    const pet = pets.get(match[1]);
    if (request.method === "GET") {
      if (!keyed()) return send(response, 401, { code: 401, type: "error", message: "api_key required" });
      return pet ? send(response, 200, pet) : send(response, 404, { code: 1, type: "error", message: "Pet not found" });
    }
    if (request.method === "DELETE") {
      pets.delete(match[1]);
      return pet ? send(response, 200, { code: 200, type: "unknown", message: match[1] }) : send(response, 404, {});
    }
  }
  if (request.method === "GET" && path === "/v2/store/inventory") {
    if (!keyed()) return send(response, 401, { code: 401, type: "error", message: "api_key required" });
    const counts = {};
    for (const pet of pets.values()) counts[pet.status] = (counts[pet.status] ?? 0) + 1;
    return send(response, 200, counts);
  }
  if (request.method === "POST" && path === "/v2/store/order") {
    if (!body || typeof body.petId !== "number") return send(response, 400, { code: 400, type: "error", message: "Invalid Order" });
    const order = { id: body.id ?? orders.size + 1, status: "placed", complete: false, ...body };
    orders.set(String(order.id), order);
    return send(response, 200, order);
  }
  if ((match = path.match(/^\/v2\/store\/order\/(\d+)$/)) && request.method === "GET") {
    const order = orders.get(match[1]);
    return order ? send(response, 200, order) : send(response, 404, { code: 1, type: "error", message: "Order not found" });
  }
  if (request.method === "GET" && path === "/v2/user/login") {
    const user = url.searchParams.get("username");
    if (!user || !url.searchParams.get("password")) return send(response, 400, "Invalid username/password supplied", "text/plain");
    return send(response, 200, `logged in user session:${user}`, "text/plain");
  }
  send(response, 404, { code: 404, type: "unknown", message: "not found" });
});

server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
