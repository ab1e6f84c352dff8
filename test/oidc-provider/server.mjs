// A Keycloak-shaped OpenID provider for jupyterhub-go's tests, built on oidc-provider (panva).
// Issuer http://127.0.0.1:$PORT/realms/$REALM; Keycloak's routes under
// /realms/$REALM/protocol/openid-connect/; a login form a test can post without JavaScript;
// and a small /test/ API to change users, revoke their tokens and log them out at runtime.
// Settings come from the environment (README.md lists them).
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const env = process.env;
const seconds = (name, dflt) => {
  const v = Number(env[name] || dflt);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} must be a positive number of seconds`);
  return v;
};
const list = (name, dflt) => (env[name] || dflt).split(',').map((s) => s.trim()).filter(Boolean);

const REALM = env.REALM || 'test';
const PREFIX = `/realms/${REALM}`;
const CLIENT_ID = env.CLIENT_ID || 'jupyterhub';
const CLIENT_SECRET = env.CLIENT_SECRET || 'jupyterhub-secret';
const REDIRECT_URIS = list('REDIRECT_URIS', 'http://127.0.0.1:8000/hub/oauth_callback');
const POST_LOGOUT_URIS = list('POST_LOGOUT_URIS', 'http://127.0.0.1:8000/hub/logout');
const BACKCHANNEL_LOGOUT_URI = env.BACKCHANNEL_LOGOUT_URI || '';
// Keycloak's defaults: access token 5 min, ID token as long as the access token,
// SSO session idle 30 min (bounds refresh tokens), SSO session max 10 h.
const ACCESS_TTL = seconds('ACCESS_TTL', 300);
const ID_TOKEN_TTL = seconds('ID_TOKEN_TTL', ACCESS_TTL);
const REFRESH_TTL = seconds('REFRESH_TTL', 1800);
const SESSION_TTL = seconds('SESSION_TTL', 36000);
// "rotate": every refresh returns a new refresh token and the old one is spent; using it again
// revokes the whole grant (Keycloak with "Revoke Refresh Token" on). "off": the same refresh
// token stays valid until it expires (Keycloak's default).
const REFRESH_ROTATION = env.REFRESH_ROTATION || 'rotate';

// Accounts. Subjects are UUIDs as in Keycloak; the username is not the subject.
// idTokenOmit lists claims left out of the ID token (still in userinfo), like a Keycloak mapper
// with "Add to ID token" off.
const users = new Map();
function putUser(username, u) {
  const prev = users.get(username) || {};
  const next = {
    sub: prev.sub || u.sub || crypto.randomUUID(),
    password: `${username}-pw`,
    email: `${username}@example.org`,
    name: username,
    groups: [],
    realmRoles: [`default-roles-${REALM}`, 'offline_access', 'uma_authorization'],
    clientRoles: [],
    idTokenOmit: [],
    ...prev,
    ...u,
  };
  next.username = username;
  users.set(username, next);
  return next;
}
putUser('alice', {
  sub: 'a11ce000-0000-4000-8000-000000000001', name: 'Alice Liddell', groups: ['/jupyter-users'],
  realmRoles: [`default-roles-${REALM}`, 'offline_access', 'uma_authorization', 'jupyter-user'],
  clientRoles: ['user'],
});
putUser('carol', {
  sub: 'ca501000-0000-4000-8000-000000000003', name: 'Carol Danvers', groups: ['/staff/physics'],
});
putUser('dave', {
  sub: 'da7e0000-0000-4000-8000-000000000004', name: 'Dave Bowman', groups: ['/jupyter-admins', '/jupyter-users'],
  realmRoles: [`default-roles-${REALM}`, 'offline_access', 'uma_authorization', 'jupyter-user', 'jupyter-admin'],
  clientRoles: ['admin', 'user'],
});
const userBySub = (sub) => [...users.values()].find((u) => u.sub === sub);

function claimsOf(u, use) {
  const [given, ...family] = u.name.split(' ');
  const c = {
    sub: u.sub,
    preferred_username: u.username,
    name: u.name,
    given_name: given,
    family_name: family.join(' '),
    email: u.email,
    email_verified: true,
    groups: u.groups,
    realm_access: { roles: u.realmRoles },
    resource_access: {
      [CLIENT_ID]: { roles: u.clientRoles },
      account: { roles: ['manage-account', 'view-profile'] },
    },
  };
  if (use === 'id_token') for (const k of u.idTokenOmit) delete c[k];
  return c;
}

// In-memory storage that, unlike oidc-provider's bundled LRU adapter, can be listed, so the
// /test/ API can find a user's sessions and grants.
const store = new Map(); // `${model}:${id}` -> { model, id, payload, expiresAt }
class Adapter {
  constructor(model) { this.model = model; }

  async upsert(id, payload, expiresIn) {
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : Infinity;
    store.set(`${this.model}:${id}`, { model: this.model, id, payload, expiresAt });
  }

  async find(id) { return live(store.get(`${this.model}:${id}`))?.payload; }

  async findByUid(uid) { return rows(this.model).find((r) => r.payload.uid === uid)?.payload; }

  async findByUserCode(code) { return rows(this.model).find((r) => r.payload.userCode === code)?.payload; }

  async consume(id) {
    const r = live(store.get(`${this.model}:${id}`));
    if (r) r.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) { store.delete(`${this.model}:${id}`); }

  async revokeByGrantId(grantId) { revokeGrant(grantId); }
}
function live(r) {
  if (r && r.expiresAt <= Date.now()) { store.delete(`${r.model}:${r.id}`); return undefined; }
  return r;
}
const rows = (model) => [...store.values()].map(live).filter((r) => r && (!model || r.model === model));
function revokeGrant(grantId) {
  let n = 0;
  for (const r of rows()) {
    if (r.payload.grantId === grantId || (r.model === 'Grant' && r.id === grantId)) {
      store.delete(`${r.model}:${r.id}`);
      n += 1;
    }
  }
  return n;
}

// The key leaves generateKeyPairSync as PEM and is re-imported before the JWK export: exporting
// the generated KeyObject directly can deadlock Node 20 at start (a GC during the export runs the
// finished key-generation job's destructor, which waits for the lock the export holds).
const { privateKey: pem } = crypto.generateKeyPairSync('rsa', {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
});
const signingKey = { ...crypto.createPrivateKey(pem).export({ format: 'jwk' }), kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' };

const page = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function configuration() {
  const client = {
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: REDIRECT_URIS,
    post_logout_redirect_uris: POST_LOGOUT_URIS,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  };
  if (BACKCHANNEL_LOGOUT_URI) {
    client.backchannel_logout_uri = BACKCHANNEL_LOGOUT_URI;
    client.backchannel_logout_session_required = true;
  }
  return {
    adapter: Adapter,
    clients: [client],
    jwks: { keys: [signingKey] },
    cookies: {
      keys: [crypto.randomBytes(32).toString('hex')],
      // Keycloak's cookie names, so logs and tests read the same against both.
      names: { session: 'KEYCLOAK_SESSION', interaction: 'AUTH_SESSION_ID', resume: 'KC_RESTART' },
    },
    routes: {
      authorization: '/protocol/openid-connect/auth',
      token: '/protocol/openid-connect/token',
      userinfo: '/protocol/openid-connect/userinfo',
      jwks: '/protocol/openid-connect/certs',
      end_session: '/protocol/openid-connect/logout',
      revocation: '/protocol/openid-connect/revoke',
      introspection: '/protocol/openid-connect/token/introspect',
      pushed_authorization_request: '/protocol/openid-connect/ext/par/request',
    },
    // Keycloak applies its default client scopes (profile, email, roles, ...) whether or not
    // they are requested, so these claims come with "openid" alone.
    claims: {
      openid: ['sub', 'preferred_username', 'groups', 'realm_access', 'resource_access'],
      profile: ['name', 'given_name', 'family_name'],
      email: ['email', 'email_verified'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'roles', 'groups', 'web-origins'],
    // Keycloak puts mapped claims into the ID token as well as userinfo.
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      introspection: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          ctx.body = page('Logging out', `${form}<p>Do you want to log out?</p>`
            + '<button type="submit" form="op.logoutForm" name="logout" value="yes">Logout</button>');
        },
        postLogoutSuccessSource: async (ctx) => { ctx.body = page('Logged out', '<p>You are logged out.</p>'); },
      },
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('Error', `<p id="kc-error-message">${esc(out.error)}: ${esc(out.error_description || '')}</p>`);
    },
    pkce: { required: () => true },
    // Keycloak returns a refresh token from every code exchange, offline_access or not.
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: REFRESH_ROTATION !== 'off',
    ttl: {
      AccessToken: ACCESS_TTL,
      IdToken: ID_TOKEN_TTL,
      RefreshToken: REFRESH_TTL,
      Session: SESSION_TTL,
      Grant: SESSION_TTL,
      Interaction: 1800,
      AuthorizationCode: 60,
    },
    interactions: { url: (ctx, interaction) => `${PREFIX}/login-actions/${interaction.uid}` },
    // A first-party client: consent is implied, as for Keycloak clients with "Consent required" off.
    loadExistingGrant: async (ctx) => {
      const { oidc } = ctx;
      const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
      let grant = grantId && await oidc.provider.Grant.find(grantId);
      if (!grant) grant = new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
      grant.addOIDCScope([...oidc.requestParamScopes].join(' '));
      await grant.save();
      return grant;
    },
    findAccount: async (ctx, sub) => {
      const u = userBySub(sub);
      if (!u) return undefined;
      return { accountId: sub, claims: async (use) => claimsOf(userBySub(sub) || u, use) };
    },
    // oidc-provider refuses to call loopback addresses (an SSRF guard); the hub under test listens
    // on 127.0.0.1, so back-channel logout calls go out without that guard.
    fetch: (url, options) => {
      delete options.dispatcher;
      return globalThis.fetch(url, options);
    },
  };
}

const loginPage = (uid, msg = '') => page('Sign in to test', `
${msg ? `<span id="input-error">${esc(msg)}</span>` : ''}
<form id="kc-form-login" method="post" action="${PREFIX}/login-actions/${uid}/authenticate">
<input id="username" name="username" autofocus><input id="password" name="password" type="password">
<input type="hidden" id="id-hidden-input" name="credentialId"><input type="submit" id="kc-login" name="login" value="Sign In">
</form>`);

async function readBody(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 1 << 20) throw new Error('request body too large');
  }
  return body;
}

function sameSecret(a, b) {
  const x = crypto.createHash('sha256').update(String(a)).digest();
  const y = crypto.createHash('sha256').update(String(b)).digest();
  return crypto.timingSafeEqual(x, y);
}

async function interaction(provider, req, res, rest) {
  const [uid, action] = rest.split('/');
  const details = await provider.interactionDetails(req, res); // throws without a valid cookie
  if (details.uid !== uid) throw new Error('interaction uid mismatch');
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  if (req.method === 'GET' && !action) return res.end(loginPage(uid));
  if (req.method === 'POST' && action === 'authenticate') {
    const form = new URLSearchParams(await readBody(req));
    const u = users.get(String(form.get('username') || '').toLowerCase()) || users.get(form.get('username'));
    if (!u || !sameSecret(u.password, form.get('password') || '')) {
      return res.end(loginPage(uid, 'Invalid username or password.')); // 200, as Keycloak does
    }
    return provider.interactionFinished(req, res, { login: { accountId: u.sub } }, { mergeWithLastSubmission: false });
  }
  res.statusCode = 405;
  return res.end();
}

// The /test/ API: a test's hand on the realm, standing in for Keycloak's admin console.
async function testApi(provider, req, res, rest) {
  const json = (status, v) => {
    res.statusCode = status;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(v));
  };
  const [, name, action] = rest.match(/^users\/([^/]+)(?:\/(revoke|logout))?$/) || [];
  if (!name) return json(404, { error: 'not found' });
  let u = users.get(name);
  if (!action && req.method === 'POST') {
    const body = JSON.parse((await readBody(req)) || '{}');
    const allowed = ['password', 'email', 'name', 'groups', 'realmRoles', 'clientRoles', 'idTokenOmit'];
    const bad = Object.keys(body).filter((k) => !allowed.includes(k));
    if (bad.length) return json(400, { error: `unknown fields ${bad.join(', ')}; allowed: ${allowed.join(', ')}` });
    u = putUser(name, body);
  }
  if (!u) return json(404, { error: `no user ${name}` });
  if (req.method === 'GET' || !action) return json(200, { ...u, password: undefined });
  if (req.method !== 'POST') return json(405, { error: 'use POST' });

  // revoke: every grant of the user is gone, with its access and refresh tokens (Keycloak:
  // "Revoke" on the user's consents / offline sessions). Browser sessions stay.
  // logout: as Keycloak's admin "Sign out": sessions end, grants are revoked, and each client with
  // a back-channel logout URI gets a logout token.
  const out = { grants: 0, sessions: 0, backchannel: [] };
  if (action === 'logout') {
    for (const r of rows('Session').filter((s) => s.payload.accountId === u.sub)) {
      for (const [clientId, auth] of Object.entries(r.payload.authorizations || {})) {
        const client = await provider.Client.find(clientId);
        if (client?.backchannelLogoutUri) {
          try {
            await client.backchannelLogout(u.sub, auth.sid);
            out.backchannel.push({ client: clientId, sid: auth.sid, ok: true });
          } catch (err) {
            out.backchannel.push({ client: clientId, sid: auth.sid, ok: false, error: err.message });
          }
        }
      }
      store.delete(`Session:${r.id}`);
      out.sessions += 1;
    }
  }
  for (const g of rows('Grant').filter((r) => r.payload.accountId === u.sub)) {
    revokeGrant(g.id);
    out.grants += 1;
  }
  return json(200, out);
}

const server = http.createServer();
server.listen(Number(env.PORT || 8180), '127.0.0.1', () => {
  // The issuer names the real port, so PORT=0 works: tests read it from the "ready" line.
  const issuer = `http://127.0.0.1:${server.address().port}${PREFIX}`;
  const provider = new Provider(issuer, configuration());
  // Keycloak puts "sid" into every ID token; oidc-provider only does for clients that registered
  // back-channel logout. The hub matches logout tokens by it, so always include it.
  provider.Client.prototype.includeSid = () => true;
  // Keycloak says in every token response how long its refresh token lives
  // (refresh_expires_in: the SSO session's idle or max time, whichever ends first); oidc-provider
  // does not, so it is added here from the refresh token just issued.
  provider.use(async (ctx, next) => {
    await next();
    const body = ctx.body;
    if (ctx.method === 'POST' && ctx.path === '/protocol/openid-connect/token' && body?.refresh_token) {
      const rt = await provider.RefreshToken.find(body.refresh_token);
      if (rt) body.refresh_expires_in = rt.remainingTTL;
    }
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  provider.on('backchannel.error', (ctx, err, client) => console.error(`backchannel logout to ${client.clientId}: ${err.message}`));
  const callback = provider.callback();

  server.on('request', async (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    try {
      if (path.startsWith(`${PREFIX}/login-actions/`)) {
        return await interaction(provider, req, res, path.slice(`${PREFIX}/login-actions/`.length));
      }
      if (path.startsWith('/test/')) return await testApi(provider, req, res, path.slice('/test/'.length));
      if (path === '/health/ready') {
        res.setHeader('content-type', 'application/json');
        return res.end('{"status":"UP"}');
      }
      if (path === PREFIX || path.startsWith(`${PREFIX}/`)) {
        req.originalUrl = req.url;
        req.url = req.url.slice(PREFIX.length) || '/';
        return callback(req, res);
      }
      res.statusCode = 404;
      return res.end('not found');
    } catch (err) {
      console.error(err);
      if (!res.headersSent) res.statusCode = 400;
      return res.end(`error: ${err.message}`);
    }
  });
  console.log(`oidc-provider ready issuer=${issuer}`);
});

// A test harness gives us its stdin; when it dies, so do we.
if (env.EXIT_WITH_STDIN) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
process.on('SIGTERM', () => process.exit(0));
