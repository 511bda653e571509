#!/bin/bash
# PayLane's first-boot script (docs/kiosk-image.md), the mechanism Raspberry
# Pi Imager uses: cmdline.txt carries
#   systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target
# so systemd runs this once, early (no network), then reboots. It installs the
# kiosk bundle and its systemd units, creates the paylane user, writes the
# kiosk's config (with the claim code, which then leaves the boot partition),
# and applies the image's options (hostname, time zone, locale, keyboard,
# Wi-Fi, admin user and SSH key, read-only root). Node and the native modules
# need the network: paylane-install.service does them after the reboot.
# At the end it takes its hook out of cmdline.txt and deletes itself.
#
# Every path is under $ROOT (empty on a Pi), so a test runs it for real
# against a fake root with stub commands on PATH. The image's settings come
# from paylane/config/firstboot.env, written by paylane-provision with every
# value checked and quoted; nothing here is templated.
# -E: the ERR trap below fires inside functions too (add_system_user), not only at the top level.
set -Eeuo pipefail

ROOT="${ROOT:-}"
BOOT="${BOOT:-$ROOT/boot/firmware}"
SRC="$BOOT/paylane"
APP="$ROOT/opt/paylane"
DATA="$ROOT/var/lib/paylane"

# The installer can read what happened on the card from any computer.
exec > >(tee -a "$BOOT/paylane-firstrun.log") 2>&1

log() { echo "paylane-firstrun: $*"; }

remove_hook() {
  sed -i -e 's# systemd\.run=[^ ]*##g' -e 's# systemd\.run_success_action=[^ ]*##g' \
    -e 's# systemd\.unit=kernel-command-line\.target##g' "$BOOT/cmdline.txt"
}

# A failure must not rerun at every boot: say where, take the hook out, keep
# the files (paylane/ on the boot partition) for a second try by hand.
# shellcheck disable=SC2317  # called by the ERR trap
on_error() {
  echo "paylane-firstrun: failed at line $1; the kiosk is not installed. The log is paylane-firstrun.log on the boot partition (docs/kiosk-image.md)" >&2
  remove_hook || true
}
trap 'on_error $LINENO' ERR

[ -d "$SRC" ] || {
  echo "paylane-firstrun: $SRC is missing: this card was not made by paylane-provision image build" >&2
  exit 1
}

KIOSK_HOSTNAME=""
KIOSK_TIMEZONE=""
KIOSK_LOCALE=""
KIOSK_KEYBOARD=""
WIFI_COUNTRY=""
ADMIN_USER=""
READ_ONLY_ROOT=0
# shellcheck source=/dev/null
. "$SRC/config/firstboot.env"

# The bundle is a release (docs/kiosk-updates.md): /opt/paylane/releases/<id>, with /opt/paylane/current
# pointing at it (the daemon's unit starts current/app/…). bin/ and updater/ (paylane-update) stay outside
# every release, so an update that breaks its release cannot break its own rollback.
release=$(sed -n 's/^  "id": "\([0-9A-Za-z][0-9A-Za-z.+_-]*\)",$/\1/p' "$SRC/opt/paylane-release.json")
[ -n "$release" ] || {
  echo "paylane-firstrun: $SRC/opt/paylane-release.json names no release id: this card was not made by paylane-provision image build" >&2
  exit 1
}
log "installing the kiosk bundle in /opt/paylane/releases/$release"
rm -rf "${APP:?}/app" "${APP:?}/bin" "${APP:?}/updater" "${APP:?}/releases/$release"
mkdir -p "$APP/releases/$release"
cp -R "$SRC/opt/bin" "$SRC/opt/updater" "$APP/"
for item in "$SRC"/opt/*; do
  [ "$(basename "$item")" = bin ] || cp -R "$item" "$APP/releases/$release/"
done
ln -sfn "releases/$release" "$APP/current"
# FAT has no modes: every copied file came out executable.
find "$APP" -type f -exec chmod 0644 {} +
chmod 0755 "$APP"/bin/*
chown -R root:root "$APP"

log "installing the systemd units"
mkdir -p "$ROOT/etc/systemd/system" "$ROOT/etc/pam.d"
for unit in "$SRC"/systemd/*; do
  install -m 0644 "$unit" "$ROOT/etc/systemd/system/"
done
install -m 0644 "$SRC/pam/paylane-kiosk-ui" "$ROOT/etc/pam.d/paylane-kiosk-ui"

log "creating the paylane and paylane-ui users"
# Two users: the daemon (serial port, printer, GPIO; owns the journal, the key and the secret) and the browser
# (display and touch screen only). A page that escapes Chromium's sandbox must not be able to read kiosk.json.
add_system_user() { # name home groups...
  local name=$1 home=$2 groups="" group
  shift 2
  for group in "$@"; do
    if grep -q "^$group:" "$ROOT/etc/group"; then groups="${groups:+$groups,}$group"; fi
  done
  if grep -q "^$name:" "$ROOT/etc/passwd"; then
    [ -z "$groups" ] || usermod --append --groups "$groups" "$name"
  else
    useradd --system --user-group --home-dir "$home" --no-create-home --shell /usr/sbin/nologin \
      ${groups:+--groups "$groups"} "$name"
  fi
}
add_system_user paylane /var/lib/paylane dialout lp gpio
add_system_user paylane-ui /var/cache/paylane-kiosk-ui video render input

log "writing the kiosk's configuration"
mkdir -p "$DATA"
chmod 0750 "$DATA"
install -m 0600 "$SRC/config/kiosk.json" "$DATA/kiosk.json"
if [ -f "$SRC/config/cloud-ca.pem" ]; then
  install -m 0644 "$SRC/config/cloud-ca.pem" "$DATA/cloud-ca.pem"
  # The daemon's own HTTPS and MQTTS clients trust the CA too, not only its enrolment (Node reads it at start).
  echo "NODE_EXTRA_CA_CERTS=/var/lib/paylane/cloud-ca.pem" >"$DATA/daemon.env"
fi
chown -R paylane:paylane "$DATA"
if [ -f "$SRC/config/update-signing.pub" ]; then
  # paylane-update accepts only bundles signed with this key (docs/kiosk-updates.md).
  mkdir -p "$ROOT/etc/paylane"
  install -m 0644 "$SRC/config/update-signing.pub" "$ROOT/etc/paylane/update-signing.pub"
fi

if [ -n "$KIOSK_HOSTNAME" ]; then
  log "hostname $KIOSK_HOSTNAME"
  # Files, not hostnamectl: hostnamed is not running this early in boot.
  echo "$KIOSK_HOSTNAME" >"$ROOT/etc/hostname"
  if grep -q '^127\.0\.1\.1' "$ROOT/etc/hosts"; then
    sed -i "s/^127\.0\.1\.1.*/127.0.1.1\t$KIOSK_HOSTNAME/" "$ROOT/etc/hosts"
  else
    printf '127.0.1.1\t%s\n' "$KIOSK_HOSTNAME" >>"$ROOT/etc/hosts"
  fi
fi

if [ -n "$KIOSK_TIMEZONE" ]; then
  if [ -e "$ROOT/usr/share/zoneinfo/$KIOSK_TIMEZONE" ]; then
    log "time zone $KIOSK_TIMEZONE"
    # Files, not timedatectl (timedated is not running yet either).
    ln -sf "/usr/share/zoneinfo/$KIOSK_TIMEZONE" "$ROOT/etc/localtime"
    echo "$KIOSK_TIMEZONE" >"$ROOT/etc/timezone"
  else
    log "time zone $KIOSK_TIMEZONE is unknown to this system: left at UTC"
  fi
fi

if [ -n "$KIOSK_LOCALE" ]; then
  log "locale $KIOSK_LOCALE"
  raspi-config nonint do_change_locale "$KIOSK_LOCALE"
fi

if [ -n "$KIOSK_KEYBOARD" ]; then
  log "keyboard layout $KIOSK_KEYBOARD"
  if [ -f "$ROOT/etc/default/keyboard" ]; then
    sed -i "s/^XKBLAYOUT=.*/XKBLAYOUT=\"$KIOSK_KEYBOARD\"/" "$ROOT/etc/default/keyboard"
  else
    mkdir -p "$ROOT/etc/default"
    printf 'XKBMODEL="pc105"\nXKBLAYOUT="%s"\nXKBVARIANT=""\nXKBOPTIONS=""\n' "$KIOSK_KEYBOARD" >"$ROOT/etc/default/keyboard"
  fi
fi

if [ -f "$SRC/config/wifi.nmconnection" ]; then
  log "Wi-Fi (country $WIFI_COUNTRY)"
  # NetworkManager keyfile, with the WPA PSK already derived: the passphrase is not on the card.
  mkdir -p "$ROOT/etc/NetworkManager/system-connections"
  install -m 0600 "$SRC/config/wifi.nmconnection" "$ROOT/etc/NetworkManager/system-connections/paylane-wifi.nmconnection"
  raspi-config nonint do_wifi_country "$WIFI_COUNTRY"
  # Raspberry Pi OS keeps Wi-Fi soft-blocked until a country is set; unblock it for the next boot.
  for state in "$ROOT"/var/lib/systemd/rfkill/*:wlan; do
    if [ -e "$state" ]; then echo 0 >"$state"; fi
  done
fi

if [ -n "$ADMIN_USER" ]; then
  # Raspberry Pi OS ships its first user (uid 1000) to be renamed on first boot; no password: SSH keys only.
  first=$(awk -F: '$3 == 1000 { print $1 }' "$ROOT/etc/passwd")
  if [ -z "$first" ]; then
    log "creating the admin user $ADMIN_USER"
    useradd --create-home --shell /bin/bash --groups sudo,adm "$ADMIN_USER"
  elif [ "$first" != "$ADMIN_USER" ]; then
    log "renaming the first user $first to $ADMIN_USER"
    usermod --login "$ADMIN_USER" --move-home --home "/home/$ADMIN_USER" "$first"
    groupmod --new-name "$ADMIN_USER" "$first"
  fi
  usermod --lock "$ADMIN_USER"
fi
# Raspberry Pi OS's "create a user" wizard would take tty1 from the kiosk UI.
systemctl disable userconfig.service || true
rm -f "$ROOT/etc/ssh/sshd_config.d/rename_user.conf" "$ROOT/etc/xdg/autostart/piwiz.desktop"

if [ -f "$SRC/config/authorized_keys" ] && [ -n "$ADMIN_USER" ]; then
  log "SSH on, for $ADMIN_USER with its key only"
  home="$ROOT/home/$ADMIN_USER"
  mkdir -p "$home/.ssh"
  chmod 0700 "$home/.ssh"
  install -m 0600 "$SRC/config/authorized_keys" "$home/.ssh/authorized_keys"
  chown -R "$ADMIN_USER:$ADMIN_USER" "$home/.ssh"
  mkdir -p "$ROOT/etc/ssh/sshd_config.d"
  printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n' >"$ROOT/etc/ssh/sshd_config.d/paylane.conf"
  systemctl enable ssh.service
else
  log "SSH stays off (no key given)"
  systemctl disable ssh.service || true
fi

if [ "$READ_ONLY_ROOT" = 1 ]; then
  log "read-only root: turned on by paylane-install after the first install; /var/lib/paylane on the partition labelled paylane-data"
  touch "$APP/read-only-root"
  # The journal must outlive a power cut: it lives on its own partition, never on the overlay.
  # (paylane-storage-check refuses to start the daemon while it is missing.)
  if ! grep -q 'LABEL=paylane-data' "$ROOT/etc/fstab"; then
    echo 'LABEL=paylane-data /var/lib/paylane ext4 defaults,noatime,nofail,x-systemd.device-timeout=10s 0 2' >>"$ROOT/etc/fstab"
  fi
fi

log "enabling the kiosk"
systemctl enable paylane-install.service paylane-storage-check.service paylane-device.service paylane-kiosk-ui.service \
  paylane-update-check.service

# The claim code (in kiosk.json), the Wi-Fi key and the bundle leave the boot partition. The files holding
# secrets are overwritten first: FAT only marks a deleted file's clusters free, and the card can be read
# elsewhere. (An SD card's wear levelling may still keep an old copy; the claim is burned at enrolment anyway.)
for secret in "$SRC/config/kiosk.json" "$SRC/config/wifi.nmconnection" "$SRC/config/firstboot.env"; do
  if [ -f "$secret" ]; then shred --zero --remove "$secret"; fi
done
rm -rf "$SRC"
remove_hook
rm -f "$BOOT/firstrun.sh"
sync
log "done; rebooting into the kiosk"
exit 0
