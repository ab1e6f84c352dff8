package config

// validatePaging checks hub.api_page_default_limit and hub.api_page_max_limit. The default
// page may not exceed the cap, or a client that asks for no limit would get a page the hub
// then silently cuts.
func (h Hub) validatePaging(bad func(key, format string, args ...any)) {
	if h.APIPageMaxLimit < 1 {
		bad("hub.api_page_max_limit", "%d: must be at least 1 (default 200)", h.APIPageMaxLimit)
	}
	if h.APIPageDefaultLimit < 1 {
		bad("hub.api_page_default_limit", "%d: must be at least 1 (default 50)", h.APIPageDefaultLimit)
	} else if h.APIPageMaxLimit >= 1 && h.APIPageDefaultLimit > h.APIPageMaxLimit {
		bad("hub.api_page_default_limit", "%d is above hub.api_page_max_limit (%d): lower it or raise the cap",
			h.APIPageDefaultLimit, h.APIPageMaxLimit)
	}
}
