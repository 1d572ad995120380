// Fuzz target: known_hosts files as OpenSSH writes them (plain, hashed, markers, any
// whitespace and line ends, any bytes), looked up for several host names, and the same bytes
// as an ssh_config (keywords, `=` separators, ProxyJump and Port validation).
import FuzzReplay
import SSHTransport

func fuzzOne(_ bytes: UnsafeRawBufferPointer) {
  let input = Array(bytes)
  var names = ["host.example", "[10.0.0.1]:2222", "10.0.0.1"]
  // The first field of the input as a name too, so that matching lines are reached.
  if let end = input.firstIndex(where: { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A }), end > 0, end < 256 {
    names.append(KnownHosts.lookupName(host: String(decoding: input[..<end], as: UTF8.self), port: 22))
  }
  for name in names {
    let parsed = KnownHosts.parse(input, file: "fuzz", name: name)
    for entry in parsed.entries { _ = KnownHosts.fingerprint(entry.key) }
    _ = HostKeyVerdict(key: [0, 0, 0, 1, 0x61], known: parsed.entries)
  }
  let config = SSHConfig(text: String(decoding: input, as: UTF8.self), path: "fuzz")
  _ = try? config.resolve("host.example")
}

/// libFuzzer's entry (a C function: no captures).
func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  fuzzOne(UnsafeRawBufferPointer(start: data, count: size))
  return 0
}

@main enum Main {
  static func main() { FuzzReplay.main(name: "fuzz-known-hosts", fuzzInput) }
}
