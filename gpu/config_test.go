package gpu

import (
	"strings"
	"testing"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrorsNameTheKeyAndTheFix(t *testing.T) {
	err := Config{Quota: map[string]int{"students": -1, "/staff": 2, "": 1}, DefaultQuota: -2}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"gpu.quota.students = -1: a quota is how many GPUs (or MIG devices) a member may hold at once; use 0 or more",
		`gpu.quota."/staff": write the group without Keycloak's leading "/" ("staff")`,
		"gpu.quota: a group name is empty",
		"gpu.default_quota = -2: use 0 or more",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestQuotaIsTheLargestOfTheUsersGroups(t *testing.T) {
	c := Config{Quota: map[string]int{"students": 1, "staff": 4, "guests": 0}, DefaultQuota: 2}
	for _, tc := range []struct {
		groups    []string
		limit     int
		fromGroup string
	}{
		{[]string{"students"}, 1, "students"},
		{[]string{"students", "staff"}, 4, "staff"},
		{[]string{"guests"}, 0, "guests"},
		{[]string{"other"}, 2, ""},
		{nil, 2, ""},
	} {
		if limit, group := c.quotaFor(tc.groups); limit != tc.limit || group != tc.fromGroup {
			t.Errorf("%v: %d from %q, want %d from %q", tc.groups, limit, group, tc.limit, tc.fromGroup)
		}
	}
}
