/// The lab's stand-in for Alibaba Cloud Linux's `smcdump-ex` (smc-tools), installed by `lab up`
/// in the lab's folder and named in its inventory (`smcdump_ex:`), so the smcdump-ex capture
/// engine is tested end to end on a machine without the SMC kernel or the real tool. It is
/// NOT the real tool; it follows its documented command line and behaviour:
/// `-m all|smc|smcr|smcd` (all: every interface, `tcpdump -i any`; the others: the SMC dump
/// device only), `-t all|raw|cdc`, `--param 'TCPDUMP OPTIONS'`, `--filter 'BPF'`, `--legacy`;
/// it creates its own `smc-dummyXXXX` device while it runs (an ifb device: this kernel has no
/// `dummy` type) and deletes it on SIGINT or SIGTERM, as the real one disables the dump and
/// deletes its device. The lab has no SMC kernel: the SMC records come from the lab's peer
/// emulator writing onto the lab's pre-made dump device, which `-m smc*` captures. `-t` is
/// accepted and recorded but not applied (the lab's dump header type constants are its own).
/// `SMCPAIR_STANDIN_KEEP_DEVICE=1` in its environment leaves the device behind, so a test can
/// check that smcpair reports a device left on a host.
enum SMCDumpExStandIn {
  static let script = #"""
    #!/bin/sh
    # smcpair lab STAND-IN for smcdump-ex (Alibaba Cloud Linux smc-tools); not the real tool.
    # Written by 'smcpair lab up'; see Sources/Lab/SMCDumpExStandIn.swift.
    usage() {
      echo "usage: smcdump-ex [-m all|smc|smcr|smcd] [-t all|raw|cdc] [--param 'TCPDUMP OPTIONS'] [--filter 'BPF'] [--legacy]"
    }
    mode=all type=all param= filter= legacy=
    while [ $# -gt 0 ]; do
      case $1 in
        -m) mode=$2; shift 2 ;;
        -t) type=$2; shift 2 ;;
        --param) param=$2; shift 2 ;;
        --filter) filter=$2; shift 2 ;;
        --legacy) legacy=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "smcdump-ex: unknown option '$1'" >&2; usage >&2; exit 2 ;;
      esac
    done
    case $mode in all|smc|smcr|smcd) ;; *) echo "smcdump-ex: -m must be all, smc, smcr or smcd" >&2; exit 2 ;; esac
    case $type in all|raw|cdc) ;; *) echo "smcdump-ex: -t must be all, raw or cdc" >&2; exit 2 ;; esac
    lab=$(ls /sys/class/net | grep '^smc-dummy' | head -n 1)
    dev=smc-dummy$(od -An -N2 -tx2 /dev/urandom | tr -d ' \n')
    ip link add "$dev" type ifb || { echo "smcdump-ex: cannot create $dev" >&2; exit 1; }
    ip link set "$dev" up
    echo "smcdump-ex (lab stand-in): dump device $dev, mode $mode, type $type${legacy:+, legacy header}" >&2
    cleanup() {
      if [ -z "$SMCPAIR_STANDIN_KEEP_DEVICE" ]; then ip link del "$dev" 2>/dev/null; fi
    }
    if [ "$mode" = all ]; then iface=any; else iface=${lab:-$dev}; fi
    if [ -n "$filter" ]; then
      tcpdump -i "$iface" $param "$filter" &
    else
      tcpdump -i "$iface" $param &
    fi
    pid=$!
    trap 'kill -INT $pid 2>/dev/null; wait $pid; cleanup; exit 0' INT TERM
    wait $pid
    status=$?
    cleanup
    exit $status
    """#
}
