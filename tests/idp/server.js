// Local stand-in for Microsoft Entra ID, and for the Graph and EWS inbox, in tests.
//
// One HTTPS server on 127.0.0.1 runs a real OpenID provider (oidc-provider) per tenant,
// mounted at /<tenant>/v2.0, shaped to answer MSAL the way Entra does: AADSTS error
// bodies, JWT access tokens with tid/appid/roles/scp, the device code flow.
// tests/idp_fixture.py starts it and wraps the control API:
//
//   POST /_control/tenants/<tenant>/clients        register or replace a client (creates the tenant):
//        {"client_id", "client_secret", "roles", "replication_delay_seconds",
//         "allow_public_client_flows", "delegated_scopes", "opaque_access_tokens"}
//        or {"client_id", "public": true, "delegated_scopes"}
//        opaque_access_tokens: access tokens are opaque strings, not JWTs, as Microsoft's APIs may receive
//        ("Tokens that a Microsoft API receives might not always be a JWT that can be decoded",
//        learn.microsoft.com/entra/identity-platform/access-tokens)
//   POST /_control/tenants/<tenant>/faults         {"status": 503, "count": 2} | {"hang": true} | {}
//   POST /_control/tenants/<tenant>/device/approve {"user_code", "username"}: the scripted user
//   GET  /_control/requests                        token requests per client_id (DELETE resets)
//
// Mailbox stand-ins check the bearer token (signature, issuer, expiry, audience), the
// audience being this server's origin plus /graph resp. /ews:
//   GET  /graph/v1.0/me/mailFolders/inbox (or /users/<id>/...)
//   POST /ews/Exchange.asmx (SOAP GetFolder of the distinguished folder "inbox")
//
// A confidential client with "allow_public_client_flows" is Entra's app registration with
// "Allow public client flows" on: one client_id that does client credentials with its secret
// and the device code flow (and refresh) without one. The provider sees one client whose
// metadata depends on the request: requests carrying client authentication get the
// confidential variant, all others the public one (see clientAuthContext).
//
// Usage: node server.js --cert CERT.pem --key KEY.pem [--ca CA.pem] [--port N]
// Prints {"port": N} on stdout once listening; exits when stdin closes or on SIGTERM.
// --ca is the CA that issued --cert; the server trusts it for the requests it sends
// to itself while approving a device code (defaults to --cert, fine if self-signed).

import { AsyncLocalStorage } from 'node:async_hooks';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

// oidc-provider prints notices with console.info; stdout carries only the port line.
console.log = console.error;
console.info = console.error;

const { values: args } = parseArgs({
  options: {
    cert: { type: 'string' },
    key: { type: 'string' },
    ca: { type: 'string' },
    port: { type: 'string', default: '0' },
  },
});
if (!args.cert || !args.key) {
  console.error('usage: node server.js --cert CERT.pem --key KEY.pem [--ca CA.pem] [--port N]');
  process.exit(2);
}
const serverCert = fs.readFileSync(args.cert);
const serverKey = fs.readFileSync(args.key);
const trustedCa = args.ca ? fs.readFileSync(args.ca) : serverCert;

const HOST = '127.0.0.1';
const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
// Entra says 5 s; 1 s keeps MSAL's polling loop quick in tests.
const DEVICE_POLL_INTERVAL = 1;

const tenants = new Map(); // tenantId -> Tenant
const tokenRequests = new Map(); // client_id -> { tenant, count, timestamps }
const hangingResponses = new Set();
let origin; // https://127.0.0.1:<port>, known once listening
// Per request: { authenticated } = whether the request carries client authentication
// (client_secret, client_assertion, an Authorization header). The adapter hands the
// provider the confidential or the public variant of a client with public client flows.
const clientAuthContext = new AsyncLocalStorage();

// ---------------------------------------------------------------------------
// Small helpers

function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

function sendText(res, status, contentType, text, headers = {}) {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

async function readBody(req, limit = 1024 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readJson(req) {
  const text = await readBody(req);
  return text.trim() ? JSON.parse(text) : {};
}

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// A stable GUID derived from a name, for Entra's object ids (oid).
function guidFrom(...parts) {
  const h = crypto.createHash('sha256').update(parts.join('\n')).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function base64urlJson(value) {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function entraTimestamp(date = new Date()) {
  return date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

// Entra's error body: AADSTS code in the description plus trace/correlation ids.
function entraError(req, error, code, message) {
  const now = new Date();
  const traceId = crypto.randomUUID();
  const correlationId = req.headers['client-request-id'] || crypto.randomUUID();
  const prefix = code ? `AADSTS${code}: ` : '';
  return {
    error,
    error_description: `${prefix}${message} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${entraTimestamp(now)}`,
    ...(code ? { error_codes: [code] } : {}),
    timestamp: entraTimestamp(now),
    trace_id: traceId,
    correlation_id: correlationId,
  };
}

// Scopes look like "<resource>/<permission>", e.g. https://127.0.0.1:4443/graph/.default.
function resourceOfScope(scope) {
  if (!scope.includes('://')) return undefined;
  const slash = scope.lastIndexOf('/');
  const resource = scope.slice(0, slash);
  return resource.includes('://') && resource.split('://')[1] ? resource : undefined;
}

function resourcesOfScopeParam(scopeParam) {
  const resources = (scopeParam || '').split(' ').filter(Boolean).map(resourceOfScope).filter(Boolean);
  return [...new Set(resources)];
}

// ---------------------------------------------------------------------------
// Tenants, clients, provider configuration

class Tenant {
  constructor(id) {
    this.id = id;
    this.mountPath = `/${encodeURIComponent(id)}/v2.0`;
    this.issuer = `${origin}${this.mountPath}`;
    this.clients = new Map(); // client_id -> registration
    this.faults = {};
    this.store = new Map(); // adapter storage: "<Model>:<id>" -> { payload, expiresAt }
    this.index = new Map(); // "uid:<uid>" / "userCode:<code>" -> id; "grant:<id>" -> Set of keys
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.signingJwk = { ...privateKey.export({ format: 'jwk' }), kid: guidFrom('key', id), alg: 'RS256', use: 'sig' };
    this.publicKey = crypto.createPublicKey(privateKey);
    this.provider = createProvider(this);
    this.callback = this.provider.callback();
  }

  // Delegated permissions of a public client that apply to a resource, as full scopes.
  delegatedScopesFor(registration, resource) {
    return registration.delegatedScopes
      .map((s) => (s.includes('://') ? s : `${resource}/${s}`))
      .filter((s) => resourceOfScope(s) === resource);
  }

  // True when the scope names a delegated permission configured (admin-consented) for the app.
  isConsented(registration, scope) {
    const resource = resourceOfScope(scope);
    if (!(registration.public || registration.publicClientFlows) || !resource) return false;
    const granted = this.delegatedScopesFor(registration, resource);
    return scope === `${resource}/.default` ? granted.length > 0 : granted.includes(scope);
  }
}

function registerClient(tenant, body) {
  const clientId = body.client_id;
  if (typeof clientId !== 'string' || !clientId) throw new Error('client_id is required');
  const isPublic = body.public === true;
  if (!isPublic && (typeof body.client_secret !== 'string' || !body.client_secret)) {
    throw new Error('client_secret is required for a confidential client');
  }
  const publicClientFlows = !isPublic && body.allow_public_client_flows === true;
  const delay = Number(body.replication_delay_seconds ?? 0);
  if (!Number.isFinite(delay) || delay < 0) throw new Error('replication_delay_seconds must be >= 0');
  const publicMetadata = {
    client_id: clientId,
    token_endpoint_auth_method: 'none',
    grant_types: [DEVICE_CODE_GRANT, 'refresh_token'],
    response_types: [],
    redirect_uris: [],
  };
  const confidentialMetadata = {
    client_id: clientId,
    client_secret: body.client_secret,
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  };
  tenant.clients.set(clientId, {
    clientId,
    public: isPublic,
    publicClientFlows,
    roles: Array.isArray(body.roles) ? body.roles.map(String) : [],
    delegatedScopes: Array.isArray(body.delegated_scopes) ? body.delegated_scopes.map(String) : [],
    opaqueAccessTokens: body.opaque_access_tokens === true,
    refreshTokens: body.refresh_tokens !== false,
    activeFrom: Date.now() + delay * 1000,
    metadata: isPublic ? publicMetadata : confidentialMetadata,
    publicMetadata: publicClientFlows ? publicMetadata : undefined,
  });
}

// The metadata oidc-provider gets for a client in the current request. oidc-provider
// caches clients by a hash of their metadata, so both variants live side by side, and
// both carry the real client_id (tokens, id_token audience, device pages, errors).
function clientMetadata(registration) {
  if (!registration) return undefined;
  if (registration.publicMetadata && !clientAuthContext.getStore()?.authenticated) {
    return registration.publicMetadata;
  }
  return registration.metadata;
}

// Whether a request authenticates its client (Entra's confidential client path).
function carriesClientAuth(req, params) {
  return Boolean(params?.get('client_secret') || params?.get('client_assertion') || req.headers.authorization);
}

// oidc-provider storage adapter. Clients come from the tenant's registrations, so a
// re-posted client (new secret) is picked up on the next lookup.
function adapterFor(tenant) {
  const { store, index } = tenant;
  return class TenantAdapter {
    constructor(model) {
      this.model = model;
    }

    key(id) {
      return `${this.model}:${id}`;
    }

    async upsert(id, payload, expiresIn) {
      const key = this.key(id);
      store.set(key, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
      if (this.model === 'Session') index.set(`uid:${payload.uid}`, id);
      if (payload.userCode) index.set(`userCode:${payload.userCode}`, id);
      if (payload.grantId) {
        const members = index.get(`grant:${payload.grantId}`) ?? new Set();
        members.add(key);
        index.set(`grant:${payload.grantId}`, members);
      }
    }

    async find(id) {
      if (this.model === 'Client') return clientMetadata(tenant.clients.get(id));
      const entry = store.get(this.key(id));
      if (!entry) return undefined;
      if (entry.expiresAt <= Date.now()) {
        store.delete(this.key(id));
        return undefined;
      }
      return entry.payload;
    }

    async findByUid(uid) {
      const id = index.get(`uid:${uid}`);
      return id === undefined ? undefined : this.find(id);
    }

    async findByUserCode(userCode) {
      const id = index.get(`userCode:${userCode}`);
      return id === undefined ? undefined : this.find(id);
    }

    async consume(id) {
      const entry = store.get(this.key(id));
      if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
    }

    async destroy(id) {
      store.delete(this.key(id));
    }

    async revokeByGrantId(grantId) {
      for (const key of index.get(`grant:${grantId}`) ?? []) store.delete(key);
      index.delete(`grant:${grantId}`);
    }
  };
}

function createProvider(tenant) {
  const findAccount = async (ctx, accountId) => ({
    accountId,
    claims: async () => ({
      sub: accountId,
      oid: guidFrom('user', tenant.id, accountId),
      tid: tenant.id,
      name: accountId.split('@')[0],
      preferred_username: accountId,
      email: accountId,
    }),
  });

  // MSAL sends no resource parameter: like Entra, the resource is the scope's prefix.
  const defaultResource = async (ctx, client, oneOf) => {
    const requested = resourcesOfScopeParam(ctx.oidc.params.scope);
    if (oneOf) {
      // A refresh token that covers several resources: serve the one the scope names.
      const wanted = requested.filter((r) => oneOf.includes(r));
      return wanted.length === 1 ? wanted[0] : oneOf;
    }
    if (requested.length > 1) {
      throw new errors.InvalidTarget('scope contains more than one resource');
    }
    return requested[0];
  };

  const getResourceServerInfo = async (ctx, resource, client) => {
    const registration = tenant.clients.get(client.clientId);
    const scopes = [`${resource}/.default`];
    // Delegated permissions are for the public (device code) side of an app.
    if (registration && client.clientAuthMethod === 'none') {
      scopes.push(...tenant.delegatedScopesFor(registration, resource));
    }
    const info = { scope: [...new Set(scopes)].join(' '), audience: resource, accessTokenTTL: 3600 };
    if (registration?.opaqueAccessTokens) return { ...info, accessTokenFormat: 'opaque' };
    return { ...info, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
  };

  // Entra v2.0 access token claims: tid, appid/azp, roles (app) or scp (delegated).
  const entraAccessToken = async (ctx, token, jwt) => {
    const { payload } = jwt;
    const registration = tenant.clients.get(token.clientId);
    jwt.header = { typ: 'JWT' };
    payload.ver = '2.0';
    payload.tid = tenant.id;
    payload.appid = token.clientId;
    payload.azp = token.clientId;
    if (token.kind === 'ClientCredentials') {
      payload.oid = guidFrom('app', tenant.id, token.clientId);
      payload.idtyp = 'app';
      payload.roles = registration ? [...registration.roles] : [];
    } else {
      payload.oid = guidFrom('user', tenant.id, token.accountId);
      payload.preferred_username = token.accountId;
      const resource = payload.aud;
      const permissions = new Set();
      for (const scope of (token.scope || '').split(' ').filter(Boolean)) {
        const expanded = scope === `${resource}/.default` && registration
          ? tenant.delegatedScopesFor(registration, resource)
          : [scope];
        for (const s of expanded) permissions.add(s.startsWith(`${resource}/`) ? s.slice(resource.length + 1) : s);
      }
      if (permissions.size) payload.scp = [...permissions].join(' ');
    }
    delete payload.scope;
    delete payload.client_id;
  };

  const page = (title, body, attrs = '') => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body ${attrs}>${body}</body></html>`;

  const provider = new Provider(tenant.issuer, {
    adapter: adapterFor(tenant),
    jwks: { keys: [tenant.signingJwk] },
    findAccount,
    clients: [],
    scopes: ['openid', 'profile', 'email', 'offline_access'],
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username', 'oid', 'tid'],
      email: ['email'],
    },
    routes: { device_authorization: '/devicecode', code_verification: '/device' },
    interactions: { url: async (ctx, interaction) => `${tenant.mountPath}/interaction/${interaction.uid}` },
    ttl: {
      AccessToken: 3600,
      ClientCredentials: 3600,
      DeviceCode: 900,
      Grant: 90 * 24 * 3600,
      IdToken: 3600,
      Interaction: 600,
      RefreshToken: 90 * 24 * 3600,
      Session: 24 * 3600,
    },
    formats: { customizers: { jwt: entraAccessToken } },
    // oidc-provider's default (lib/helpers/defaults.js), unless the client is registered to get none: a provider
    // that answers a device code sign-in without a refresh token, for verify's check that one comes back.
    async issueRefreshToken(ctx, client, source) {
      if (tenant.clients.get(client.clientId)?.refreshTokens === false) return false;
      return client.grantTypeAllowed('refresh_token') && source.scopes.has('offline_access');
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource,
        getResourceServerInfo,
        useGrantedResource: async () => true,
      },
      deviceFlow: {
        enabled: true,
        async userCodeInputSource(ctx, form, out) {
          const error = out ? `data-error="${escapeHtml(out.error)}" data-error-description="${escapeHtml(out.error_description ?? '')}"` : '';
          ctx.body = page('Enter code', form, error);
        },
        async userCodeConfirmSource(ctx, form, client, deviceInfo, userCode) {
          ctx.body = page('Confirm sign-in', `<p>Sign in to ${escapeHtml(client.clientId)} with code ${escapeHtml(userCode)}?</p>${form}`);
        },
        async successSource(ctx) {
          ctx.body = page('Signed in', '<p>You have signed in. You may close this window.</p>', 'data-result="success"');
        },
      },
    },
  });

  // Entra-shaped answers from the token and device code endpoints.
  provider.use(async (ctx, next) => {
    await next();
    const endpoint = ctx.path;
    if (endpoint !== '/token' && endpoint !== '/devicecode') return;
    const body = ctx.body;
    if (ctx.status >= 400 && body?.error) {
      const params = ctx.req.tokenParams ?? new URLSearchParams();
      const translated = translateError(tenant, params, body);
      ctx.status = translated.status ?? ctx.status;
      ctx.body = entraError(ctx.req, translated.error, translated.code, translated.message);
    } else if (endpoint === '/devicecode' && ctx.status === 200 && body?.user_code) {
      body.interval = DEVICE_POLL_INTERVAL;
      body.message = `To sign in, use a web browser to open the page ${body.verification_uri} and enter the code ${body.user_code} to authenticate.`;
    } else if (endpoint === '/token' && ctx.status === 200 && body?.id_token) {
      const claims = JSON.parse(Buffer.from(body.id_token.split('.')[1], 'base64url'));
      body.client_info = base64urlJson({ uid: claims.oid, utid: tenant.id });
    }
  });

  return provider;
}

// Map oidc-provider's OAuth errors to the AADSTS codes Entra uses for the same case.
function translateError(tenant, params, body) {
  const clientId = params.get('client_id');
  switch (body.error) {
    case 'invalid_client':
      if (!params.get('client_secret') && !params.get('client_assertion')) {
        return { error: 'invalid_client', code: 7000218, message: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'." };
      }
      return { error: 'invalid_client', code: 7000215, status: 401, message: `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.` };
    case 'invalid_target':
      return { error: 'invalid_scope', code: 28000, message: `Provided value for the input parameter scope is not valid because it contains more than one resource. Scope ${params.get('scope')} is not valid.` };
    case 'invalid_scope':
      if (params.get('grant_type') === 'refresh_token') {
        return { error: 'invalid_grant', code: 65001, message: `The user or administrator has not consented to use the application with ID '${clientId}'. Send an interactive authorization request for this user and resource.` };
      }
      return { error: 'invalid_scope', code: 70011, message: `The provided value for the input parameter 'scope' is not valid. ${body.error_description}` };
    case 'authorization_pending':
      return { error: 'authorization_pending', code: 70016, message: 'OAuth 2.0 device flow error. Authorization is pending. Continue polling.' };
    case 'expired_token':
      return { error: 'expired_token', code: 70020, message: 'The provided value for the input parameter \'device_code\' is not valid. This device code has expired.' };
    case 'access_denied':
      return { error: 'authorization_declined', code: 70000, message: 'The user declined the sign-in request.' };
    case 'invalid_grant':
      return { error: 'invalid_grant', code: 70000, message: `Provided grant is invalid or malformed. ${body.error_description}` };
    case 'unsupported_grant_type':
      return { error: 'unsupported_grant_type', code: 70003, message: 'The app requested an unsupported grant type.' };
    default:
      return { error: body.error, message: body.error_description ?? body.error };
  }
}

// Entra refresh tokens are multi-resource: a delegated permission configured for the app
// (its delegated_scopes) can be obtained for another resource with the same refresh
// token. oidc-provider binds a refresh token to the scopes first asked for, so before the
// provider sees such a request the grant and the stored refresh token are widened.
async function widenRefreshToken(tenant, registration, params) {
  const { provider } = tenant;
  const scopeParam = params.get('scope');
  if (!scopeParam) return;
  const refreshToken = await provider.RefreshToken.find(params.get('refresh_token') ?? '');
  if (!refreshToken || refreshToken.clientId !== registration.clientId) return;
  const granted = refreshToken.scopes;
  const extra = scopeParam.split(' ').filter((s) => s && !granted.has(s));
  if (!extra.length || !extra.every((s) => tenant.isConsented(registration, s))) return;
  const grant = await provider.Grant.find(refreshToken.grantId);
  if (!grant) return;
  for (const scope of extra) grant.addResourceScope(resourceOfScope(scope), scope);
  await grant.save();
  const resources = new Set([refreshToken.resource].flat().filter(Boolean));
  for (const scope of extra) resources.add(resourceOfScope(scope));
  refreshToken.resource = [...resources];
  refreshToken.scope = [...granted, ...extra].join(' ');
  await refreshToken.save();
}

// ---------------------------------------------------------------------------
// Tenant endpoints: /<tenant>/v2.0/...

function clientIdOf(req, params) {
  if (params.get('client_id')) return params.get('client_id');
  const auth = req.headers.authorization ?? '';
  if (auth.startsWith('Basic ')) {
    const decoded = Buffer.from(auth.slice(6), 'base64').toString('utf8');
    return decodeURIComponent(decoded.split(':')[0]);
  }
  return undefined;
}

function recordTokenRequest(tenant, clientId, params) {
  const key = clientId ?? '';
  const entry = tokenRequests.get(key) ?? { tenant: tenant.id, count: 0, timestamps: [], grants: [], scopes: [] };
  entry.count += 1;
  entry.timestamps.push(Date.now() / 1000);
  entry.grants.push(params.get('grant_type') ?? '');
  entry.scopes.push(params.get('scope') ?? '');
  tokenRequests.set(key, entry);
}

function recordDeviceCodeRequest(tenant, clientId, params) {
  const key = clientId ?? '';
  const entry = tokenRequests.get(key) ?? { tenant: tenant.id, count: 0, timestamps: [], grants: [], scopes: [] };
  entry.deviceCodeScopes = [...(entry.deviceCodeScopes ?? []), params.get('scope') ?? ''];
  tokenRequests.set(key, entry);
}

// Returns true when a configured fault answered (or swallowed) the request.
function applyFault(tenant, res) {
  const { faults } = tenant;
  if (faults.hang) {
    hangingResponses.add(res);
    res.on('close', () => hangingResponses.delete(res));
    return true;
  }
  if (faults.status && faults.count > 0) {
    faults.count -= 1;
    const reason = http.STATUS_CODES[faults.status] ?? 'Error';
    sendText(
      res,
      faults.status,
      'text/html',
      `<html><head><title>${faults.status} ${reason}</title></head><body><center><h1>${faults.status} ${reason}</h1></center><hr><center>gateway</center></body></html>\n`,
    );
    return true;
  }
  return false;
}

async function handleTenant(req, res, tenant, subPath) {
  if (subPath.startsWith('/interaction/')) {
    await clientAuthContext.run({ authenticated: false }, () => handleInteraction(req, res, tenant));
    return;
  }
  const isToken = req.method === 'POST' && subPath === '/token';
  const isDeviceCode = req.method === 'POST' && subPath === '/devicecode';
  if (isToken || isDeviceCode) {
    const raw = await readBody(req, 64 * 1024);
    // The stream is consumed now; oidc-provider then parses req.body instead.
    req.body = raw;
    const params = new URLSearchParams(raw);
    req.tokenParams = params;
    const clientId = clientIdOf(req, params);
    if (isToken) {
      recordTokenRequest(tenant, clientId, params);
      if (applyFault(tenant, res)) return;
    } else {
      recordDeviceCodeRequest(tenant, clientId, params);
    }
    const registration = tenant.clients.get(clientId);
    if (!registration || Date.now() < registration.activeFrom) {
      sendJson(res, 400, entraError(
        req,
        'unauthorized_client',
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${tenant.id}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
      ));
      return;
    }
    if (isToken && params.get('grant_type') === 'client_credentials') {
      const scopes = (params.get('scope') ?? '').split(' ').filter(Boolean);
      if (!scopes.length) {
        sendJson(res, 400, entraError(req, 'invalid_request', 900144, "The request body must contain the following parameter: 'scope'."));
        return;
      }
      const invalid = scopes.find((s) => !s.endsWith('/.default') || !resourceOfScope(s));
      if (invalid) {
        sendJson(res, 400, entraError(req, 'invalid_scope', 1002012, `The provided value for scope ${invalid} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`));
        return;
      }
    }
    if (isToken && params.get('grant_type') === 'refresh_token') {
      await widenRefreshToken(tenant, registration, params);
    }
  }
  // Client credentials is always the confidential side: without a secret it fails with
  // AADSTS7000218 even when public client flows are allowed.
  const authenticated = carriesClientAuth(req, req.tokenParams)
    || req.tokenParams?.get('grant_type') === 'client_credentials';
  await clientAuthContext.run({ authenticated }, () => tenant.callback(req, res));
}

// Login and consent pages of the device flow. The scripted user (approveDeviceCode)
// posts its username here; a person could too.
async function handleInteraction(req, res, tenant) {
  const { provider } = tenant;
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    sendJson(res, 400, { error: 'invalid_request', error_description: err.message });
    return;
  }
  if (req.method === 'GET') {
    sendText(res, 200, 'text/html; charset=utf-8', `<!DOCTYPE html><html><body><form method="post"><input name="username" placeholder="user@example"><button>${escapeHtml(details.prompt.name)}</button></form></body></html>`);
    return;
  }
  if (req.method !== 'POST') {
    sendJson(res, 405, { error: 'invalid_request', error_description: 'use GET or POST' });
    return;
  }
  const form = new URLSearchParams(await readBody(req));
  const { prompt, params, session, grantId } = details;
  let result;
  if (prompt.name === 'login') {
    const username = form.get('username');
    if (!username) {
      sendJson(res, 400, { error: 'invalid_request', error_description: 'username is required' });
      return;
    }
    result = { login: { accountId: username } };
  } else if (prompt.name === 'consent') {
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  } else {
    sendJson(res, 400, { error: 'invalid_request', error_description: `unsupported prompt ${prompt.name}` });
    return;
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

// A scripted browser: enters the user code on the provider's own device page, signs in
// and consents through the interaction pages, following redirects with a cookie jar.
async function approveDeviceCode(tenant, userCode, username) {
  const cookies = new Map();
  const send = (method, url, form) => new Promise((resolve, reject) => {
    const body = form ? new URLSearchParams(form).toString() : undefined;
    const headers = { accept: 'text/html' };
    if (cookies.size) headers.cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (body) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const req = https.request(url, { method, headers, ca: trustedCa }, (res) => {
      for (const line of res.headers['set-cookie'] ?? []) {
        const [pair, ...attributes] = line.split(';');
        const eq = pair.indexOf('=');
        const name = pair.slice(0, eq).trim();
        const value = pair.slice(eq + 1).trim();
        const expired = attributes.some((a) => /^\s*expires=Thu, 01 Jan 1970/i.test(a));
        if (!value || expired) cookies.delete(name);
        else cookies.set(name, value);
      }
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });

  const deviceUrl = `${tenant.issuer}/device`;
  let response = await send('GET', deviceUrl);
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(response.body)?.[1];
  if (!xsrf) throw new Error('device page has no xsrf field');
  response = await send('POST', deviceUrl, { xsrf, user_code: userCode, confirm: 'yes' });
  let url = new URL(deviceUrl);
  for (let hops = 0; hops < 10 && [302, 303].includes(response.status); hops += 1) {
    url = new URL(response.headers.location, url);
    response = url.pathname.startsWith(`${tenant.mountPath}/interaction/`)
      ? await send('POST', url, { username })
      : await send('GET', url);
  }
  if (response.status === 200 && response.body.includes('data-result="success"')) {
    return { status: 200, body: { status: 'approved', user_code: userCode, username } };
  }
  // The device pages report errors as data attributes (see userCodeInputSource).
  const shown = [/data-error="([^"]*)"/, /data-error-description="([^"]*)"/]
    .map((re) => re.exec(response.body)?.[1])
    .filter(Boolean)
    .join(': ');
  const description = shown || `unexpected answer ${response.status} from ${url.pathname}`;
  return { status: 400, body: { error: 'approval_failed', error_description: description } };
}

// ---------------------------------------------------------------------------
// Control API: /_control/...

async function handleControl(req, res, path) {
  let m;
  if (req.method === 'GET' && path === '/_control/requests') {
    sendJson(res, 200, Object.fromEntries(tokenRequests));
    return;
  }
  if (req.method === 'DELETE' && path === '/_control/requests') {
    tokenRequests.clear();
    sendJson(res, 200, {});
    return;
  }
  if (req.method === 'POST' && (m = /^\/_control\/tenants\/([^/]+)\/clients$/.exec(path))) {
    const tenantId = decodeURIComponent(m[1]);
    const body = await readJson(req);
    let tenant = tenants.get(tenantId);
    if (!tenant) {
      tenant = new Tenant(tenantId);
      tenants.set(tenantId, tenant);
    }
    try {
      registerClient(tenant, body);
    } catch (err) {
      sendJson(res, 400, { error: 'invalid_request', error_description: err.message });
      return;
    }
    sendJson(res, 201, { tenant: tenantId, client_id: body.client_id, issuer: tenant.issuer });
    return;
  }
  m = /^\/_control\/tenants\/([^/]+)\/(faults|device\/approve)$/.exec(path);
  if (req.method === 'POST' && m) {
    const tenant = tenants.get(decodeURIComponent(m[1]));
    if (!tenant) {
      sendJson(res, 404, { error: 'not_found', error_description: 'tenant not registered' });
      return;
    }
    const body = await readJson(req);
    if (m[2] === 'faults') {
      const status = body.status === undefined ? undefined : Number(body.status);
      if (status !== undefined && !(status >= 500 && status <= 599)) {
        sendJson(res, 400, { error: 'invalid_request', error_description: 'status must be a 5xx code' });
        return;
      }
      // A count of 0 or none: every token request fails until the faults are cleared.
      const count = Number(body.count ?? 0);
      tenant.faults = {
        ...(body.hang ? { hang: true } : {}),
        ...(status ? { status, count: count > 0 ? count : Infinity } : {}),
      };
      sendJson(res, 200, tenant.faults);
      return;
    }
    if (!body.user_code || !body.username) {
      sendJson(res, 400, { error: 'invalid_request', error_description: 'user_code and username are required' });
      return;
    }
    const result = await approveDeviceCode(tenant, String(body.user_code), String(body.username));
    sendJson(res, result.status, result.body);
    return;
  }
  sendJson(res, 404, { error: 'not_found', error_description: `no control endpoint ${req.method} ${path}` });
}

// ---------------------------------------------------------------------------
// Mailbox stand-ins: Graph and EWS, each checking the bearer token like the real API.

function verifyBearer(req, audience) {
  const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (!match) return { error: 'missing bearer token' };
  const parts = match[1].split('.');
  if (parts.length !== 3) return { error: 'malformed token' };
  let header;
  let claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url'));
    claims = JSON.parse(Buffer.from(parts[1], 'base64url'));
  } catch {
    return { error: 'malformed token' };
  }
  const tenant = tenants.get(claims.tid);
  if (!tenant || header.alg !== 'RS256' || header.kid !== tenant.signingJwk.kid) return { error: 'unknown signing key' };
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
  if (!crypto.verify('sha256', signed, tenant.publicKey, Buffer.from(parts[2], 'base64url'))) {
    return { error: 'invalid signature' };
  }
  const now = Date.now() / 1000;
  if (claims.iss !== tenant.issuer) return { error: 'wrong issuer' };
  if (typeof claims.exp !== 'number' || claims.exp <= now) return { error: 'token expired' };
  if (typeof claims.nbf === 'number' && claims.nbf > now + 60) return { error: 'token not yet valid' };
  const audiences = [claims.aud].flat();
  if (!audiences.includes(audience)) return { error: `audience must be ${audience}` };
  return { claims };
}

function unauthorized(res, contentType, body, description) {
  sendText(res, 401, contentType, body, {
    'www-authenticate': `Bearer error="invalid_token", error_description="${description.replace(/"/g, "'")}"`,
  });
}

const INBOX = { id: 'inbox', displayName: 'Inbox', totalItemCount: 3, unreadItemCount: 1 };

function handleGraph(req, res, path) {
  const m = /^\/graph\/v1\.0\/(me|users\/[^/]+)\/mailFolders\/inbox$/.exec(path);
  if (!m || req.method !== 'GET') {
    sendJson(res, 404, { error: { code: 'ResourceNotFound', message: 'Resource not found for the segment.' } });
    return;
  }
  const { claims, error } = verifyBearer(req, `https://${req.headers.host}/graph`);
  if (error) {
    unauthorized(res, 'application/json', JSON.stringify({ error: { code: 'InvalidAuthenticationToken', message: error } }), error);
    return;
  }
  if (m[1] === 'me' && !claims.scp) {
    sendJson(res, 400, { error: { code: 'BadRequest', message: '/me request is only valid with delegated authentication flow.' } });
    return;
  }
  sendJson(res, 200, INBOX);
}

const SOAP_NS = 'http://schemas.xmlsoap.org/soap/envelope/';
const EWS_MESSAGES = 'http://schemas.microsoft.com/exchange/services/2006/messages';
const EWS_TYPES = 'http://schemas.microsoft.com/exchange/services/2006/types';

function soapEnvelope(body) {
  return `<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="${SOAP_NS}"><s:Header><h:ServerVersionInfo MajorVersion="15" MinorVersion="20" MajorBuildNumber="7000" MinorBuildNumber="0" Version="V2018_01_08" xmlns:h="${EWS_TYPES}"/></s:Header><s:Body>${body}</s:Body></s:Envelope>
`;
}

async function handleEws(req, res, path) {
  if (path !== '/ews/Exchange.asmx' || req.method !== 'POST') {
    sendText(res, 404, 'text/plain', 'not found\n');
    return;
  }
  const request = await readBody(req);
  const { error } = verifyBearer(req, `https://${req.headers.host}/ews`);
  if (error) {
    unauthorized(res, 'text/plain', '', error);
    return;
  }
  const xml = 'text/xml; charset=utf-8';
  if (!/<(\w+:)?GetFolder[\s>]/.test(request)) {
    sendText(res, 500, xml, soapEnvelope(`<s:Fault><faultcode xmlns:a="${EWS_TYPES}">a:ErrorInvalidRequest</faultcode><faultstring xml:lang="en-US">The request is invalid. Only GetFolder is implemented here.</faultstring></s:Fault>`));
    return;
  }
  const folder = /<(?:\w+:)?DistinguishedFolderId\s[^>]*Id="([^"]+)"/.exec(request)?.[1];
  let message;
  if (folder === 'inbox') {
    message = `<m:GetFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Folders><t:Folder><t:FolderId Id="${Buffer.from('inbox').toString('base64')}" ChangeKey="AQAAABYAAAA="/><t:DisplayName>Inbox</t:DisplayName><t:TotalCount>3</t:TotalCount><t:ChildFolderCount>0</t:ChildFolderCount><t:UnreadCount>1</t:UnreadCount></t:Folder></m:Folders></m:GetFolderResponseMessage>`;
  } else {
    message = '<m:GetFolderResponseMessage ResponseClass="Error"><m:MessageText>The specified folder could not be found in the store.</m:MessageText><m:ResponseCode>ErrorFolderNotFound</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:Folders/></m:GetFolderResponseMessage>';
  }
  sendText(res, 200, xml, soapEnvelope(`<m:GetFolderResponse xmlns:m="${EWS_MESSAGES}" xmlns:t="${EWS_TYPES}"><m:ResponseMessages>${message}</m:ResponseMessages></m:GetFolderResponse>`));
}

// ---------------------------------------------------------------------------
// Front door

async function route(req, res) {
  const path = new URL(req.url, origin).pathname;
  if (path.startsWith('/_control/')) return handleControl(req, res, path);
  if (path.startsWith('/graph/')) return handleGraph(req, res, path);
  if (path.startsWith('/ews/')) return handleEws(req, res, path);
  const m = /^\/([^/]+)(\/v2\.0)?(\/.*)?$/.exec(path);
  if (m) {
    const tenantId = decodeURIComponent(m[1]);
    const tenant = tenants.get(tenantId);
    if (!tenant) {
      sendJson(res, 400, entraError(
        req,
        'invalid_request',
        90002,
        `Tenant '${tenantId}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
      ));
      return undefined;
    }
    if (m[2]) {
      req.originalUrl = req.url;
      req.url = req.url.slice(tenant.mountPath.length) || '/';
      return handleTenant(req, res, tenant, m[3] ?? '/');
    }
  }
  sendJson(res, 404, { error: 'not_found', error_description: `nothing at ${path}` });
  return undefined;
}

const server = https.createServer({ cert: serverCert, key: serverKey }, (req, res) => {
  route(req, res).catch((err) => {
    console.error(err);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(err.message ?? err) });
    else res.destroy();
  });
});

function shutdown() {
  for (const res of hangingResponses) res.destroy();
  process.exit(0);
}

server.listen(Number(args.port), HOST, () => {
  const { port } = server.address();
  origin = `https://${HOST}:${port}`;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stdin.on('end', shutdown);
process.stdin.on('close', shutdown);
process.stdin.resume();
