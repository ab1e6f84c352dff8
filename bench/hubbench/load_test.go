package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestInterleaveAlternatesTheOrderAndTakesMedians(t *testing.T) {
	var order []string
	runs := map[string]int{}
	got, err := interleave(3, []string{"go", "py"}, func(t string) ([]float64, error) {
		order = append(order, t)
		runs[t]++
		return []float64{float64(runs[t] * 10)}, nil // 10, 20, 30: median 20
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(order, " "), "go py py go go py"; got != want {
		t.Errorf("order %q, want %q", got, want)
	}
	if got[0][0] != 20 || got[1][0] != 20 {
		t.Errorf("medians %v, want 20 for each", got)
	}
}

// A request slower than the window still counts: the run goes on until 2*c have completed, so a
// slow endpoint at many connections yields figures rather than none.
func TestHammerWaitsForSlowRequests(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(400 * time.Millisecond)
	}))
	defer srv.Close()
	r, err := hammer(context.Background(), srv.URL, "", 4, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.N < 4 || r.P50 < 300*time.Millisecond {
		t.Errorf("%d requests, p50 %s: want the 4 slow ones counted", r.N, r.P50)
	}
}
