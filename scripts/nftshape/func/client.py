import socket, sys, collections, json
vip, n, srcs = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(',')
res = {}
for src in srcs:
    cnt = collections.Counter()
    for _ in range(n):
        s = socket.socket(); s.settimeout(2); s.bind((src, 0))
        try:
            s.connect((vip, 80)); cnt[s.recv(64).decode().strip()] += 1
        except Exception as e: cnt['ERR:' + type(e).__name__] += 1
        finally: s.close()
    res[src] = dict(cnt)
print(json.dumps(res, sort_keys=True))
