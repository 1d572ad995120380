import CLibPcap
import CLinuxNet
import CaptureFiles

#if canImport(Glibc)
  import Glibc
#endif

/// A libpcap problem, with the interface and libpcap's own words.
public struct PcapError: Error, Sendable, CustomStringConvertible {
  public enum Code: String, Sendable {
    case open, activate, filter, direction, permission, noSuchDevice, stats
  }
  public var code: Code
  public var interface: String
  public var message: String
  public var description: String { "\(interface): \(message)" }
}

/// One live libpcap handle: `pcap_create` + setters + `pcap_activate`, nanosecond
/// timestamps, immediate mode, non-blocking with a selectable descriptor.
final class PcapHandle {
  let interface: String
  /// Block retire timeout: the longest a packet waits in the kernel before delivery.
  static let retireMilliseconds = 10
  private var handle: OpaquePointer?
  let linkType: UInt32
  let selectableFD: Int32

  init(interface: String, snaplen: Int, bufferBytes: Int) throws(PcapError) {
    self.interface = interface
    var errbuf = [CChar](repeating: 0, count: Int(smcpair_pcap_errbuf_size))
    guard let created = pcap_create(interface, &errbuf) else {
      throw PcapError(code: .open, interface: interface, message: String(cString: errbuf))
    }
    handle = created
    pcap_set_snaplen(created, Int32(snaplen))
    pcap_set_promisc(created, 0)
    pcap_set_buffer_size(created, Int32(clamping: bufferBytes))
    // Not immediate mode: the kernel hands over a block of packets at a time (TPACKET_V3),
    // and retires a partly filled block after `retireMilliseconds`, so the capture thread
    // wakes per block rather than per packet. The thread polls non-blocking handles and
    // drains after the retire time on stop, so nothing waits in a half-filled block.
    pcap_set_timeout(created, Int32(PcapHandle.retireMilliseconds))
    pcap_set_tstamp_precision(created, Int32(PCAP_TSTAMP_PRECISION_NANO))
    let status = pcap_activate(created)
    if status < 0 {
      let text = String(cString: pcap_geterr(created))
      pcap_close(created)
      handle = nil
      switch status {
      case PCAP_ERROR_NO_SUCH_DEVICE:
        throw PcapError(code: .noSuchDevice, interface: interface, message: "no such interface (\(text))")
      case PCAP_ERROR_PERM_DENIED:
        throw PcapError(
          code: .permission, interface: interface,
          message: "permission denied (\(text)); the agent needs root or CAP_NET_RAW+CAP_NET_ADMIN")
      default:
        throw PcapError(code: .activate, interface: interface, message: "cannot start capturing: \(text)")
      }
    }
    linkType = UInt32(pcap_datalink(created))
    pcap_setnonblock(created, 1, &errbuf)
    selectableFD = pcap_get_selectable_fd(created)
  }

  deinit { close() }

  func close() {
    if let handle { pcap_close(handle) }
    handle = nil
  }

  /// Compiles and installs a BPF filter; the compiled program is freed on every path.
  func setFilter(_ filter: String) throws(PcapError) {
    guard let handle else { return }
    var program = bpf_program()
    guard pcap_compile(handle, &program, filter, 1, 0xFFFF_FFFF) == 0 else {
      throw PcapError(
        code: .filter, interface: interface,
        message: "filter '\(filter)' does not compile: \(String(cString: pcap_geterr(handle)))")
    }
    defer { pcap_freecode(&program) }
    guard pcap_setfilter(handle, &program) == 0 else {
      throw PcapError(
        code: .filter, interface: interface,
        message: "filter '\(filter)' cannot be installed: \(String(cString: pcap_geterr(handle)))")
    }
  }

  /// Keeps only the packets of one direction, by the kernel's packet type (`PACKET_OUTGOING`
  /// or not), that match `filter`.
  ///
  /// libpcap alone cannot do this well: its `inbound`/`outbound` compile to a load of the
  /// kernel's packet type, which only the kernel can run, yet libpcap runs a new filter in
  /// user space on the blocks already in the ring when it is installed, and there that load
  /// rejects every packet (the first packets of a capture would be lost). So libpcap gets
  /// the direction (`pcap_setdirection`, checked in user space on the ring's packet type)
  /// and the plain `filter`, and the kernel gets `inbound and (filter)`, attached to the
  /// socket directly, so that each packet is copied into only one direction's ring.
  /// Throws when the direction cannot be set; where the kernel program does not compile or
  /// attach (or the capture is cooked) the user-space check alone remains, which is correct
  /// but copies every packet into both directions' rings.
  func setDirectionalFilter(_ direction: PacketDirection, _ filter: String) throws(PcapError) {
    guard let handle, direction != .unknown else { return }
    guard pcap_setdirection(handle, direction == .inbound ? PCAP_D_IN : PCAP_D_OUT) == 0 else {
      throw PcapError(
        code: .direction, interface: interface,
        message: "cannot select a direction: \(String(cString: pcap_geterr(handle)))")
    }
    if !filter.isEmpty { try setFilter(filter) }
    // Cooked captures (the "any" device; the agent reads their packet type from the frame
    // instead) see a link header the kernel's filter does not: libpcap rewrites their
    // programs' offsets for the kernel, so a program attached here would read wrong bytes.
    guard linkType != UInt32(DLT_LINUX_SLL) && linkType != UInt32(DLT_LINUX_SLL2) else { return }
    let word = direction == .inbound ? "inbound" : "outbound"
    let kernel = filter.isEmpty ? word : "\(word) and (\(filter))"
    var program = bpf_program()
    guard pcap_compile(handle, &program, kernel, 1, 0xFFFF_FFFF) == 0 else { return }
    defer { pcap_freecode(&program) }
    _ = smcpair_attach_socket_filter(pcap_fileno(handle), program.bf_insns, UInt16(clamping: program.bf_len))
  }

  /// Reads up to `limit` packets that are ready, calling `body` with (ns timestamp, original
  /// length, data). Returns the number read, or -1 on error.
  func dispatch(limit: Int32, _ body: (Int64, Int, UnsafeRawBufferPointer) -> Void) -> Int32 {
    guard let handle else { return -1 }
    return withoutActuallyEscaping(body) { body in
      var context = DispatchContext(body: body)
      return withUnsafeMutablePointer(to: &context) { pointer in
        pcap_dispatch(
          handle, limit,
          { user, header, bytes in
            guard let user, let header, let bytes else { return }
            let context = UnsafeMutableRawPointer(user).assumingMemoryBound(to: DispatchContext.self)
            let h = header.pointee
            let ns = Int64(h.ts.tv_sec) * 1_000_000_000 + Int64(h.ts.tv_usec)
            context.pointee.body(ns, Int(h.len), UnsafeRawBufferPointer(start: bytes, count: Int(h.caplen)))
          }, UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: UInt8.self))
      }
    }
  }

  struct DispatchContext {
    var body: (Int64, Int, UnsafeRawBufferPointer) -> Void
  }

  var lastError: String { handle.map { String(cString: pcap_geterr($0)) } ?? "closed" }

  /// (received, dropped by the kernel, dropped by the interface).
  func statistics() -> (received: UInt64, dropped: UInt64, interfaceDropped: UInt64)? {
    guard let handle else { return nil }
    var stats = pcap_stat()
    guard pcap_stats(handle, &stats) == 0 else { return nil }
    return (UInt64(stats.ps_recv), UInt64(stats.ps_drop), UInt64(stats.ps_ifdrop))
  }
}

/// Checks a BPF filter without any interface (the coordinator compiles filters before it
/// touches a host). Returns libpcap's message when it does not compile.
public enum FilterCheck {
  public static func problem(_ filter: String, linkType: Int32 = 1) -> String? {
    guard let dead = pcap_open_dead(linkType, 262_144) else { return "libpcap cannot open a dead handle" }
    defer { pcap_close(dead) }
    var program = bpf_program()
    guard pcap_compile(dead, &program, filter, 1, 0xFFFF_FFFF) == 0 else {
      return String(cString: pcap_geterr(dead))
    }
    pcap_freecode(&program)
    return nil
  }

  public static var libraryVersion: String { String(cString: pcap_lib_version()) }
}
