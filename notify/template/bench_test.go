package template

import "testing"

func BenchmarkRender(b *testing.B) {
	t, err := Parse("平安保险", "您的{product}保单{policy:ref}将于{expires_on:date}到期，请及时续保。")
	if err != nil {
		b.Fatal(err)
	}
	v := map[string]string{"product": "车险", "policy": "FIRE-12345", "expires_on": "2027-03-01"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := t.Render(v); err != nil {
			b.Fatal(err)
		}
	}
}
