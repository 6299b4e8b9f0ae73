#!/usr/bin/env python3
"""Rewrite svcnat's rendered nft script (kube-proxy gen B) into candidate shapes.
usage: shapes.py VARIANT base.nft [changed.nft]  -> writes VARIANT.nft (and VARIANT.chg.nft, VARIANT.chgfull.nft)
VARIANTS: A (as is), A0 (affinity dropped), B1 (per-chain dynamic map), B2 (one global affinity set),
C0 (shared endpoint map, affinity dropped), C2 (shared endpoint map + global affinity set)"""
import re, sys
from collections import OrderedDict

T = "ip svcnat"
RULE = re.compile(r'^add rule ip svcnat (\S+) (.*)$')

class Alloc:
    def __init__(self): self.ep = {}; self.rng = {}; self.next_ep = 1; self.next_rng = 0
    def epslot(self, key):
        if key not in self.ep: self.ep[key] = self.next_ep; self.next_ep += 1
        return self.ep[key]
    def range(self, key, n):
        if key not in self.rng: self.rng[key] = self.next_rng; self.next_rng += n
        return self.rng[key]

def parse(lines):
    decls, rules, elems = [], OrderedDict(), []
    for l in lines:
        if l.startswith('add rule '):
            m = RULE.match(l); rules.setdefault(m.group(1), []).append(m.group(2))
        elif l.startswith('add element '): elems.append(l)
        else: decls.append(l)
    return decls, rules, elems

def transform(variant, text, al):
    lines = text.splitlines()
    decls, rules, elems = parse(lines)
    # endpoint chain -> (proto, addr:port); affinity set -> timeout
    epdnat = {}
    for ch, rs in rules.items():
        if ch.startswith('endpoint-'):
            for r in rs:
                m = re.search(r'meta l4proto (\w+) dnat to (\S+)', r)
                if m: epdnat[ch] = (m.group(1), m.group(2))
    timeouts = {}
    for d in decls:
        m = re.match(r'add set ip svcnat (affinity-\S+) .*timeout (\d+)s', d)
        if m: timeouts[m.group(1)] = int(m.group(2))
    newdecls, newrules, newelems = [decls[0]], OrderedDict(), []
    aff = variant in ('B1', 'B2', 'C2')
    shared = variant in ('C0', 'C2')
    if shared:
        newdecls.append(f'add map {T} endpoints {{ typeof numgen random mod 1 : ip daddr . tcp dport ; comment "endpoints of every service chain, by numgen offset" ; }}')
    if variant in ('B2', 'C2'):
        newdecls.append(f'add set {T} affinity {{ typeof numgen random mod 1 . ip saddr ; flags dynamic,timeout ; size 1048576 ; comment "ClientIP affinity: endpoint . client" ; }}')
    for d in decls[1:]:
        if variant != 'A' and (d.startswith(f'add set {T} affinity-') or d.startswith(f'add chain {T} endpoint-')):
            continue
        newdecls.append(d)
    for ch, rs in rules.items():
        if variant != 'A' and ch.startswith('endpoint-'):
            continue
        out = []
        affrules = [r for r in rs if re.match(r'ip saddr @affinity-', r)]
        if variant == 'A' or not (affrules or any(' dnat ip addr . port to numgen' in r for r in rs)):
            newrules[ch] = rs; continue
        if affrules:
            eps = [re.search(r'goto (\S+)$', r).group(1) for r in affrules]
            asets = [re.search(r'@(\S+)', r).group(1) for r in affrules]
            proto = epdnat[eps[0]][0]; tgts = [epdnat[e][1] for e in eps]
            t = timeouts[asets[0]]
            n = len(eps)
            if not aff:
                ep = [tuple(x.split(':')) for x in tgts]
                if shared:
                    k = al.range((ch, tuple(tgts)), n)
                    out.append(f'meta l4proto {proto} dnat ip addr . port to numgen random mod {n} offset {k} map @endpoints')
                    newelems += [f'add element {T} endpoints {{ {k+i} : {a} . {p} }}' for i, (a, p) in enumerate(ep)]
                else:
                    out.append(f'meta l4proto {proto} dnat ip addr . port to numgen random mod {n} map {{ ' + ' , '.join(f'{i} : {a} . {p}' for i, (a, p) in enumerate(ep)) + ' }')
            elif variant == 'B1':
                mp = 'affinity-' + ch.split('-', 1)[1]
                newdecls.append(f'add map {T} {mp} {{ type ipv4_addr : ipv4_addr . inet_service ; flags dynamic,timeout ; timeout {t}s ; }}')
                a0, p0 = tgts[0].split(':')
                out.append(f'ip saddr @{mp} update @{mp} {{ ip saddr : {a0} . {p0} }} meta l4proto {proto} dnat ip addr . port to ip saddr map @{mp}')
                for i, tg in enumerate(tgts):
                    a, p = tg.split(':')
                    pick = f'numgen random mod {n-i} 0 ' if i < n-1 else ''
                    out.append(f'{pick}update @{mp} {{ ip saddr : {a} . {p} }} meta l4proto {proto} dnat to {tg}')
            else:  # B2, C2: one global set keyed by endpoint slot . client
                slots = [al.epslot(e) for e in eps]
                for s, tg in zip(slots, tgts):
                    key = f'numgen random mod 1 offset {s} . ip saddr'
                    out.append(f'{key} @affinity update @affinity {{ {key} timeout {t}s }} meta l4proto {proto} dnat to {tg}')
                for i, (s, tg) in enumerate(zip(slots, tgts)):
                    key = f'numgen random mod 1 offset {s} . ip saddr'
                    pick = f'numgen random mod {n-i} 0 ' if i < n-1 else ''
                    out.append(f'{pick}update @affinity {{ {key} timeout {t}s }} meta l4proto {proto} dnat to {tg}')
            # keep rules that are not affinity / vmap (none expected)
            out += [r for r in rs if not r.startswith('ip saddr @affinity-') and not r.startswith('numgen random mod')]
        else:
            for r in rs:
                m = re.match(r'meta l4proto (\w+) dnat ip addr . port to numgen random mod (\d+) map \{ (.*) \}$', r)
                if m and shared:
                    proto, n = m.group(1), int(m.group(2))
                    ep = [e.split(' : ')[1] for e in m.group(3).split(' , ')]
                    k = al.range((ch, tuple(ep)), n)
                    out.append(f'meta l4proto {proto} dnat ip addr . port to numgen random mod {n} offset {k} map @endpoints')
                    newelems += [f'add element {T} endpoints {{ {k+i} : {e} }}' for i, e in enumerate(ep)]
                else:
                    out.append(r)
        newrules[ch] = out
    return newdecls, newrules, elems + newelems

def script(d, r, e):
    out = list(d)
    for ch, rs in r.items():
        out += [f'add rule {T} {ch} {x}' for x in rs]
    return '\n'.join(out + e) + '\n'

def declname(d):
    m = re.match(r'add (table|chain|set|map) ip svcnat ?(\S*)', d); return m.group(1), m.group(2)

def elemkey(e):
    m = re.match(r'add element ip svcnat (\S+) \{ (.*) \}$', e)
    body = re.sub(r' comment "[^"]*"', '', m.group(2)).split(' : ')[0]
    return f'delete element {T} {m.group(1)} {{ {body} }}'

def change(a, b):
    (d1, r1, e1), (d2, r2, e2) = a, b
    out = [d for d in d2 if d not in set(d1)]
    for ch, rs in r2.items():
        if r1.get(ch) != rs:
            if ch in r1: out.append(f'flush chain {T} {ch}')
            out += [f'add rule {T} {ch} {x}' for x in rs]
    for ch in r1:
        if ch not in r2: out.append(f'flush chain {T} {ch}')
    s1, s2 = set(e1), set(e2)
    out += [e for e in e2 if e not in s1]
    out += [elemkey(e) for e in e1 if e not in s2]
    for d in d1:
        if d not in set(d2):
            kind, name = declname(d); out.append(f'delete {kind} {T} {name}')
    return '\n'.join(out) + '\n'

if __name__ == '__main__':
    v, base = sys.argv[1], sys.argv[2]
    al = Alloc()
    a = transform(v, open(base).read(), al)
    open(f'{v}.nft', 'w').write(script(*a))
    for chg in sys.argv[3:]:
        b = transform(v, open(chg).read(), al)
        tag = chg.split('.')[-2]
        open(f'{v}.{tag}.nft', 'w').write(change(a, b))
