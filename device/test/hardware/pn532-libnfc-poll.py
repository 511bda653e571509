"""nfc-poll's calls through the real libnfc (Debian libnfc6), for hosts without libnfc-examples.

nfc-poll (libnfc-examples) is nfc_open + nfc_initiator_init + nfc_initiator_poll_target with
PollNr 20, Period 2 (x 150 ms), then nfc_initiator_target_is_present until the card leaves.
This does the same through ctypes and prints what nfc-poll prints. Usage: pn532-libnfc-poll.py
(the device comes from LIBNFC_DEFAULT_DEVICE).
"""
import ctypes
import sys

nfc = ctypes.CDLL("libnfc.so.6")
nfc.nfc_open.restype = ctypes.c_void_p
nfc.nfc_open.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
nfc.nfc_device_get_name.restype = ctypes.c_char_p
nfc.nfc_device_get_name.argtypes = [ctypes.c_void_p]
for f in ("nfc_initiator_init", "nfc_close"):
    getattr(nfc, f).argtypes = [ctypes.c_void_p]
nfc.nfc_initiator_poll_target.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint8, ctypes.c_uint8, ctypes.c_void_p]
nfc.nfc_initiator_target_is_present.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
nfc.str_nfc_target.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_void_p, ctypes.c_bool]

# nfc-types.h: NMT_ISO14443A = 1, NMT_JEWEL = 2; NBR_106 = 1.
class Modulation(ctypes.Structure):
    _fields_ = [("nmt", ctypes.c_int), ("nbr", ctypes.c_int)]

ctx = ctypes.c_void_p()
nfc.nfc_init(ctypes.byref(ctx))
dev = nfc.nfc_open(ctx, None)
if not dev:
    print("ERROR: Unable to open NFC device.")
    sys.exit(1)
if nfc.nfc_initiator_init(dev) < 0:
    print("ERROR: nfc_initiator_init")
    sys.exit(1)
print("NFC reader: %s opened" % nfc.nfc_device_get_name(dev).decode())
mods = (Modulation * 2)(Modulation(1, 1), Modulation(2, 1))
target = ctypes.create_string_buffer(4096)  # nfc_target is smaller; its layout is libnfc's business
res = nfc.nfc_initiator_poll_target(dev, mods, 2, 20, 2, target)
if res > 0:
    text = ctypes.c_char_p()
    nfc.str_nfc_target(ctypes.byref(text), target, True)
    print(text.value.decode(), end="")
    print("Waiting for card removing...", flush=True)
    while nfc.nfc_initiator_target_is_present(dev, None) == 0:
        pass
    print("done.")
else:
    print("No target found.")
nfc.nfc_close(dev)
nfc.nfc_exit(ctx)
