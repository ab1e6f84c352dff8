package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

// Sharing, as JupyterHub 5.0 has it: an owner (or whoever holds `shares` on the server) grants a
// user or a group scopes on one server, directly or through a code the recipient accepts at
// /hub/accept-share. A share's scopes become the recipient's own (auth.Gate.OwnerScopes), so
// `access:servers!server=alice/` lets bob through alice's server's OAuth login until it is revoked.

func (a *API) registerShares(mux *http.ServeMux, api string) {
	// {server} may be empty: the default server is "/shares/alice/".
	server := func(path string) []string { return []string{path + "/{server}", path + "/{$}"} }
	mux.Handle(api+"/shares/{name}", a.authed(methods{"GET": a.listShares}))
	for _, p := range server(api + "/shares/{name}") {
		mux.Handle(p, a.authed(methods{"GET": a.listShares, "POST": a.grantShare, "PATCH": a.revokeShare, "DELETE": a.deleteShares}))
	}
	mux.Handle(api+"/share-codes/{name}", a.authed(methods{"GET": a.listShareCodes}))
	for _, p := range server(api + "/share-codes/{name}") {
		mux.Handle(p, a.authed(methods{"GET": a.listShareCodes, "POST": a.createShareCode, "DELETE": a.deleteShareCodes}))
	}
	mux.Handle(api+"/users/{name}/shared", a.authed(methods{"GET": a.userShares}))
	for _, p := range server(api + "/users/{name}/shared/{owner}") {
		mux.Handle(p, a.authed(methods{"GET": a.userShare, "DELETE": a.leaveUserShare}))
	}
	mux.Handle(api+"/groups/{group}/shared", a.authed(methods{"GET": a.groupShares}))
	for _, p := range server(api + "/groups/{group}/shared/{owner}") {
		mux.Handle(p, a.authed(methods{"GET": a.groupShare, "DELETE": a.leaveGroupShare}))
	}
}

// sharedServer is the server as a share shows it: JupyterHub's truncated model.
func (a *API) sharedServer(sv store.Server) map[string]any {
	full := a.serverModel(context.Background(), sv, false) // without the state, nothing is read
	return map[string]any{
		"user": map[string]any{"name": sv.UserName}, "name": sv.Name,
		"url": full.URL, "full_url": full.FullURL, "ready": full.Ready,
	}
}

func (a *API) shareModel(sh store.Share) map[string]any {
	m := map[string]any{
		"server": a.sharedServer(sh.Server), "scopes": sh.Scopes, "user": nil, "group": nil,
		"kind": "user", "created_at": web.ISOTime(sh.Created),
	}
	if sh.Group != "" {
		m["group"], m["kind"] = map[string]any{"name": sh.Group}, "group"
	} else {
		m["user"] = map[string]any{"name": sh.UserName}
	}
	return m
}

func (a *API) shareCodeModel(c store.ShareCode, secret string) map[string]any {
	m := map[string]any{
		"server": a.sharedServer(c.Server), "scopes": c.Scopes, "id": c.APIID(),
		"created_at": web.ISOTime(c.Created), "expires_at": web.ISOTime(c.ExpiresAt),
		"exchange_count": c.ExchangeCount, "last_exchanged_at": web.ISOTime(c.LastExchangedAt),
	}
	if secret != "" { // shown once, when it is made
		m["code"] = secret
		m["accept_url"] = a.prefix + "/hub/accept-share?" + url.Values{"code": {secret}}.Encode()
		m["full_accept_url"] = nil
		if a.cfg.Hub.PublicURL != "" {
			m["full_accept_url"] = a.fullURL(&http.Request{}, m["accept_url"].(string))
		}
	}
	return m
}

// sharedServerOf resolves {name}/{server} for a caller holding scope on that server. Only
// default servers exist on this hub, so a named one is 404.
func (a *API) sharedServerOf(w http.ResponseWriter, r *http.Request, c *auth.Caller, scope string) (store.Server, bool) {
	u, ok := a.targetUser(w, r, c, scope)
	if !ok {
		return store.Server{}, false
	}
	name := r.PathValue("server")
	if name != "" || !c.Scopes.Allows(scope, scopes.Target{User: u.Name, Groups: u.Groups, Server: name, HasServer: true}) {
		web.Error(w, http.StatusNotFound, "no such server: %s/%s", u.Name, name)
		return store.Server{}, false
	}
	sv, err := a.store.Server(r.Context(), u.ID, name)
	if err != nil {
		a.writeErr(w, err)
		return sv, false
	}
	return sv, true
}

// listAny answers a list as JupyterHub does: paginated with the pagination media type, else bare.
func (a *API) listAny(w http.ResponseWriter, r *http.Request, items []map[string]any) {
	offset, limit, paginated, err := a.paging(r)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	total := len(items)
	page := items[min(offset, total):min(offset+limit, total)]
	if !paginated {
		web.JSON(w, http.StatusOK, page)
		return
	}
	web.JSON(w, http.StatusOK, a.paginatedList(r, page, offset, limit, total))
}

func (a *API) listShares(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	var shares []store.Share
	if oneServer(r) {
		sv, ok := a.sharedServerOf(w, r, c, "read:shares")
		if !ok {
			return
		}
		var err error
		if shares, err = a.store.SharesOf(r.Context(), 0, sv.ID); err != nil {
			a.writeErr(w, err)
			return
		}
	} else {
		u, ok := a.targetUser(w, r, c, "read:shares")
		if !ok {
			return
		}
		var err error
		if shares, err = a.store.SharesOf(r.Context(), u.ID, 0); err != nil {
			a.writeErr(w, err)
			return
		}
	}
	items := []map[string]any{}
	for _, sh := range shares {
		items = append(items, a.shareModel(sh))
	}
	a.listAny(w, r, items)
}

// oneServer says whether the request names a server ("/shares/alice/") or only its owner.
func oneServer(r *http.Request) bool {
	return strings.HasSuffix(r.Pattern, "{server}") || strings.HasSuffix(r.Pattern, "{$}")
}

// shareRequest is the body of POST and PATCH /shares/{owner}/{server}.
type shareRequest struct {
	User   string   `json:"user"`
	Group  string   `json:"group"`
	Scopes []string `json:"scopes"`
}

// shareRequestOf reads a grant or revoke: the server in the path, for a caller holding shares on
// it, and a body naming exactly one user or group.
func (a *API) shareRequestOf(w http.ResponseWriter, r *http.Request, c *auth.Caller) (store.Server, shareRequest, bool) {
	var body shareRequest
	sv, ok := a.sharedServerOf(w, r, c, "shares")
	if !ok {
		return sv, body, false
	}
	if err := a.decodeModel(w, r, &body); err != nil {
		a.writeErr(w, err)
		return sv, body, false
	}
	if (body.User == "") == (body.Group == "") {
		web.Error(w, http.StatusBadRequest, "specify exactly one of user or group")
		return sv, body, false
	}
	return sv, body, true
}

// serverScopes applies the server filter to the scopes of a share, as JupyterHub's
// Share._apply_filter: a bare scope gets it, a scope filtered to another object is refused.
func serverScopes(req []string, owner, server string) ([]string, error) {
	filter := "server=" + owner + "/" + server
	if len(req) == 0 {
		return []string{"access:servers!" + filter}, nil
	}
	var out []string
	for _, s := range req {
		if !scopes.Known(s) {
			return nil, web.Errorf(http.StatusBadRequest, "unknown scope %q", s)
		}
		name, f, _ := strings.Cut(s, "!")
		if f != "" && f != filter {
			return nil, web.Errorf(http.StatusBadRequest, "scope %s is not about %s/%s: a share can only give scopes on the shared server", s, owner, server)
		}
		out = append(out, name+"!"+filter)
	}
	return out, nil
}

// mayGrant checks the caller holds, on the server, every scope a share or code would give:
// nobody passes on more than they have.
func mayGrant(w http.ResponseWriter, c *auth.Caller, sv store.Server, granted []string) bool {
	target := scopes.Target{User: sv.UserName, Server: sv.Name, HasServer: true}
	for _, s := range granted {
		name, _, _ := strings.Cut(s, "!")
		if !c.Scopes.Allows(name, target) {
			web.Error(w, http.StatusForbidden, "not allowed to share %s with scope %s", sv.UserName+"/"+sv.Name, s)
			return false
		}
	}
	return true
}

func (a *API) grantShare(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	sv, body, ok := a.shareRequestOf(w, r, c)
	if !ok {
		return
	}
	granted, err := serverScopes(body.Scopes, sv.UserName, sv.Name)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	if !mayGrant(w, c, sv, granted) {
		return
	}
	var userID int64
	if body.User != "" {
		if !c.Scopes.Allows("read:users:name", scopes.Target{User: body.User}) {
			web.Error(w, http.StatusForbidden, "need scope read:users:name to share with users by name")
			return
		}
		to, err := a.store.GetUser(r.Context(), body.User)
		if err != nil {
			web.Error(w, http.StatusBadRequest, "no such user: %s", body.User)
			return
		}
		userID = to.ID
	} else {
		if !c.Scopes.Allows("read:groups:name", scopes.Target{Groups: []string{body.Group}}) {
			web.Error(w, http.StatusForbidden, "need scope read:groups:name to share with groups by name")
			return
		}
		if _, err := a.store.GetGroup(r.Context(), body.Group); err != nil {
			web.Error(w, http.StatusBadRequest, "no such group: %s", body.Group)
			return
		}
	}
	sh, err := a.store.GrantShare(r.Context(), sv.ID, userID, body.Group, granted)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	a.log.Info("server shared", "server", sv.UserName+"/"+sv.Name, "user", body.User, "group", body.Group, "scopes", granted, "by", c.Name())
	web.JSON(w, http.StatusOK, a.shareModel(sh))
}

func (a *API) revokeShare(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	sv, body, ok := a.shareRequestOf(w, r, c)
	if !ok {
		return
	}
	var userID int64
	if body.User != "" {
		to, err := a.store.GetUser(r.Context(), body.User)
		if err != nil {
			web.JSON(w, http.StatusOK, map[string]any{}) // no such user: nothing to revoke
			return
		}
		userID = to.ID
	}
	var revoke []string
	if len(body.Scopes) > 0 {
		var err error
		if revoke, err = serverScopes(body.Scopes, sv.UserName, sv.Name); err != nil {
			a.writeErr(w, err)
			return
		}
	}
	sh, err := a.store.RevokeShare(r.Context(), sv.ID, userID, body.Group, revoke)
	if errors.Is(err, store.ErrNotFound) {
		a.log.Info("share revoked", "server", sv.UserName+"/"+sv.Name, "user", body.User, "group", body.Group, "by", c.Name())
		web.JSON(w, http.StatusOK, map[string]any{})
		return
	}
	if err != nil {
		a.writeErr(w, err)
		return
	}
	web.JSON(w, http.StatusOK, a.shareModel(sh))
}

func (a *API) deleteShares(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	sv, ok := a.sharedServerOf(w, r, c, "shares")
	if !ok {
		return
	}
	if err := a.store.DeleteShares(r.Context(), sv.ID); err != nil {
		a.writeErr(w, err)
		return
	}
	a.log.Info("all shares revoked", "server", sv.UserName+"/"+sv.Name, "by", c.Name())
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) listShareCodes(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	var codes []store.ShareCode
	var err error
	if oneServer(r) {
		sv, ok := a.sharedServerOf(w, r, c, "read:shares")
		if !ok {
			return
		}
		codes, err = a.store.ShareCodesOf(r.Context(), 0, sv.ID)
	} else {
		u, ok := a.targetUser(w, r, c, "read:shares")
		if !ok {
			return
		}
		codes, err = a.store.ShareCodesOf(r.Context(), u.ID, 0)
	}
	if err != nil {
		a.writeErr(w, err)
		return
	}
	items := []map[string]any{}
	for _, sc := range codes {
		items = append(items, a.shareCodeModel(sc, ""))
	}
	a.listAny(w, r, items)
}

func (a *API) createShareCode(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	sv, ok := a.sharedServerOf(w, r, c, "shares")
	if !ok {
		return
	}
	var body struct {
		Scopes    []string `json:"scopes"`
		ExpiresIn *int64   `json:"expires_in"`
	}
	if err := a.decodeModel(w, r, &body); err != nil {
		a.writeErr(w, err)
		return
	}
	ttl := int64(86400) // JupyterHub's default: a day
	if body.ExpiresIn != nil {
		ttl = *body.ExpiresIn
	}
	if ttl < 60 || ttl > 525600*60 {
		web.Error(w, http.StatusBadRequest, "expires_in must be from 60 seconds to a year (31536000)")
		return
	}
	granted, err := serverScopes(body.Scopes, sv.UserName, sv.Name)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	if !mayGrant(w, c, sv, granted) {
		return
	}
	code, secret, err := a.store.CreateShareCode(r.Context(), sv.ID, granted, time.Duration(ttl)*time.Second)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	a.log.Info("share code created", "server", sv.UserName+"/"+sv.Name, "id", code.APIID(), "by", c.Name())
	web.JSON(w, http.StatusOK, a.shareCodeModel(code, secret))
}

func (a *API) deleteShareCodes(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	sv, ok := a.sharedServerOf(w, r, c, "shares")
	if !ok {
		return
	}
	q := r.URL.Query()
	var id int64
	if s := q.Get("id"); s != "" {
		n, err := strconv.ParseInt(strings.TrimPrefix(s, "sc_"), 10, 64)
		if err != nil || !strings.HasPrefix(s, "sc_") {
			web.Error(w, http.StatusNotFound, "no code found matching id=%s", s)
			return
		}
		id = n
	}
	n, err := a.store.DeleteShareCodes(r.Context(), sv.ID, q.Get("code"), id)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	if n == 0 && (q.Get("code") != "" || id > 0) {
		web.Error(w, http.StatusNotFound, "no matching code found")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) userShares(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	u, ok := a.targetUser(w, r, c, "read:users:shares")
	if !ok {
		return
	}
	shares, err := a.store.SharedWith(r.Context(), u)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	items := []map[string]any{}
	for _, sh := range shares {
		items = append(items, a.shareModel(sh))
	}
	a.listAny(w, r, items)
}

// oneShare finds the share of {owner}/{server} held by user or group (exactly one given).
func (a *API) oneShare(w http.ResponseWriter, r *http.Request, userID int64, group string) (store.Share, bool) {
	owner, err := a.store.GetUser(r.Context(), r.PathValue("owner"))
	if err == nil && r.PathValue("server") == "" {
		var sv store.Server
		if sv, err = a.store.Server(r.Context(), owner.ID, ""); err == nil {
			var list []store.Share
			if list, err = a.store.SharesOf(r.Context(), 0, sv.ID); err == nil {
				for _, sh := range list {
					if (userID > 0 && sh.UserID == userID) || (group != "" && sh.Group == group) {
						return sh, true
					}
				}
			}
		}
	}
	web.Error(w, http.StatusNotFound, "no such share on %s/%s", r.PathValue("owner"), r.PathValue("server"))
	return store.Share{}, false
}

func (a *API) userShare(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	u, ok := a.targetUser(w, r, c, "read:users:shares")
	if !ok {
		return
	}
	if sh, ok := a.oneShare(w, r, u.ID, ""); ok {
		web.JSON(w, http.StatusOK, a.shareModel(sh))
	}
}

// leaveUserShare is a user giving up a share they were given.
func (a *API) leaveUserShare(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	u, ok := a.targetUser(w, r, c, "users:shares")
	if !ok {
		return
	}
	sh, ok := a.oneShare(w, r, u.ID, "")
	if !ok {
		return
	}
	if _, err := a.store.RevokeShare(r.Context(), sh.Server.ID, u.ID, "", nil); err != nil && !errors.Is(err, store.ErrNotFound) {
		a.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) groupShares(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	g, ok := a.targetGroup(w, r, c, "read:groups:shares")
	if !ok {
		return
	}
	shares, err := a.store.SharedWithGroup(r.Context(), g.Name)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	items := []map[string]any{}
	for _, sh := range shares {
		items = append(items, a.shareModel(sh))
	}
	a.listAny(w, r, items)
}

func (a *API) groupShare(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	g, ok := a.targetGroup(w, r, c, "read:groups:shares")
	if !ok {
		return
	}
	if sh, ok := a.oneShare(w, r, 0, g.Name); ok {
		web.JSON(w, http.StatusOK, a.shareModel(sh))
	}
}

func (a *API) leaveGroupShare(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	g, ok := a.targetGroup(w, r, c, "groups:shares")
	if !ok {
		return
	}
	sh, ok := a.oneShare(w, r, 0, g.Name)
	if !ok {
		return
	}
	if _, err := a.store.RevokeShare(r.Context(), sh.Server.ID, 0, g.Name, nil); err != nil && !errors.Is(err, store.ErrNotFound) {
		a.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
