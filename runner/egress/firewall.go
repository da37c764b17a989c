package egress

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/coreos/go-iptables/iptables"
)

// firewall is the host's INPUT rules for one egress network: a chain,
// jumped to for packets that arrive from the network's bridge, that
// accepts the proxy's ports and drops the rest. Without it a container on
// the network reaches every service the host listens with on all
// addresses, through the bridge's gateway address.
type firewall struct {
	bridge string
	chain  string
}

// chainName is the firewall chain of the instance whose id starts short.
func chainName(short string) string { return "TAKO-EGRESS-" + short }

// guard installs the chain for bridge, accepting TCP to ports.
func guard(bridge, chain string, ports []int) (*firewall, error) {
	ipt, err := iptables.New()
	if err != nil {
		return nil, fmt.Errorf("iptables: %w", err)
	}
	// Start from a clean chain: an earlier run of this instance id may have
	// left one.
	if err := removeChain(bridge, chain); err != nil {
		return nil, err
	}
	if err := ipt.NewChain("filter", chain); err != nil {
		return nil, fmt.Errorf("iptables: create chain %s: %w", chain, err)
	}
	w := &firewall{bridge: bridge, chain: chain}
	for _, p := range ports {
		if err := ipt.Append("filter", chain, "-p", "tcp", "--dport", strconv.Itoa(p), "-j", "ACCEPT"); err != nil {
			w.remove()
			return nil, fmt.Errorf("iptables: accept the proxy's port: %w", err)
		}
	}
	if err := ipt.Append("filter", chain, "-j", "DROP"); err != nil {
		w.remove()
		return nil, fmt.Errorf("iptables: drop the rest: %w", err)
	}
	if err := ipt.Insert("filter", "INPUT", 1, "-i", bridge, "-j", chain); err != nil {
		w.remove()
		return nil, fmt.Errorf("iptables: jump from INPUT: %w", err)
	}
	return w, nil
}

// remove takes the chain out of INPUT and deletes it.
func (w *firewall) remove() error { return removeChain(w.bridge, w.chain) }

// removeChain deletes the jump from INPUT to chain for bridge and the chain
// itself; what is already gone counts as done.
func removeChain(bridge, chain string) error {
	ipt, err := iptables.New()
	if err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	exists, err := ipt.ChainExists("filter", chain)
	if err != nil {
		return fmt.Errorf("iptables: look for %s: %w", chain, err)
	}
	if !exists {
		return nil // and so is the jump to it, which cannot outlive it
	}
	var errs []error
	if err := ipt.DeleteIfExists("filter", "INPUT", "-i", bridge, "-j", chain); err != nil {
		errs = append(errs, fmt.Errorf("iptables: remove the jump to %s: %w", chain, err))
	}
	if err := ipt.ClearAndDeleteChain("filter", chain); err != nil {
		errs = append(errs, fmt.Errorf("iptables: delete %s: %w", chain, err))
	}
	return errors.Join(errs...)
}
