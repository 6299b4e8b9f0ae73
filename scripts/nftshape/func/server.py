import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 8080)); s.listen(512)
while True:
    c, _ = s.accept()
    try: c.sendall((c.getsockname()[0] + '\n').encode())
    finally: c.close()
