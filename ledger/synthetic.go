package ledger

// SyntheticSubject returns a distinct 16-hex-digit subject for each n that
// looks random, as real subjects (keyed hashes of phone numbers) do, so that
// benchmarks and load tests spread their streams over the stream index the
// way real traffic does: the splitmix64 finalizer, a bijection on 64 bits.
func SyntheticSubject(n uint64) string {
	n ^= n >> 30
	n *= 0xbf58476d1ce4e5b9
	n ^= n >> 27
	n *= 0x94d049bb133111eb
	n ^= n >> 31
	const hexd = "0123456789abcdef"
	var b [16]byte
	for i := range b {
		b[15-i] = hexd[n&15]
		n >>= 4
	}
	return string(b[:])
}
