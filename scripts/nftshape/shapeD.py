#!/usr/bin/env python3
"""D: C2, plus chainless cluster-IP services: a service chain reached only from its cluster IP's service-ips
element becomes `goto dispatch-N`, with endpoints keyed by ip daddr . th dport . index (no mark needed)."""
import re, sys
src = open(sys.argv[1]).read().splitlines()
T = 'ip svcnat'
refs = {}
for l in src:
    for m in re.finditer(r'goto (service-\S+)', l):
        refs.setdefault(m.group(1), []).append(l)
rulesof = {}
for l in src:
    m = re.match(r'add rule ip svcnat (\S+) (.*)$', l)
    if m: rulesof.setdefault(m.group(1), []).append(m.group(2))
chainless, disp, extra = {}, set(), []
for ch, rs in rulesof.items():
    if not ch.startswith('service-') or len(rs) != 1: continue
    m = re.match(r'meta l4proto tcp dnat ip addr . port to numgen random mod (\d+) offset (\d+) map @endpoints$', rs[0])
    r = refs.get(ch, [])
    if not m or len(r) != 1 or not r[0].startswith('add element ip svcnat service-ips'): continue
    chainless[ch] = (int(m.group(1)), int(m.group(2)))
off2ep = {}
for l in src:
    m = re.match(r'add element ip svcnat endpoints \{ (\d+) : (\S+ \. \d+) \}', l)
    if m: off2ep[int(m.group(1))] = m.group(2)
dead = {k + i for n, k in chainless.values() for i in range(n)}
out, elems = [], []
for l in src:
    m = re.match(r'add (chain|rule) ip svcnat (\S+)', l)
    if m and m.group(2) in chainless: continue
    m = re.match(r'add element ip svcnat service-ips \{ (\S+) \. tcp \. (\d+) : goto (\S+) \}', l)
    if m and m.group(3) in chainless:
        n, k = chainless[m.group(3)]; disp.add(n)
        elems.append(f'add element {T} service-ips {{ {m.group(1)} . tcp . {m.group(2)} : goto dispatch-{n} }}')
        for i in range(n):
            elems.append(f'add element {T} vip-endpoints {{ {m.group(1)} . {m.group(2)} . {i} : {off2ep[k+i]} }}')
        continue
    if l.startswith('add element ip svcnat endpoints'):
        off = int(re.search(r'\{ (\d+)', l).group(1))
        if off in dead: continue
    out.append(l)
decl = [f'add map {T} vip-endpoints {{ typeof ip daddr . tcp dport . numgen random mod 1 : ip daddr . tcp dport ; }}']
for n in sorted(disp):
    decl.append(f'add chain {T} dispatch-{n}')
    decl.append(f'add rule {T} dispatch-{n} meta l4proto tcp dnat ip addr . port to ip daddr . th dport . numgen random mod {n} map @vip-endpoints')
print('\n'.join(out[:1] + decl + out[1:] + elems))
