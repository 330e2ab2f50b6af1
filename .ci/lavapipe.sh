#!/usr/bin/env bash
# A Vulkan device without a GPU, for the webgpu backend's tests: Mesa's lavapipe (software
# Vulkan) 25.0.7 from bookworm-backports, unpacked into .vk/ (git-ignored); nothing system-wide
# changes except libvulkan1 (the loader, from bookworm). Bookworm's own Mesa 22.3.6 is rejected
# by Dawn ("shaderUniform*ArrayDynamicIndexing required"). Writes .vk/env.sh to source.
# Usage: bash .ci/lavapipe.sh [dir]   (default: .vk under the project root)
set -euo pipefail
cd "$(dirname "$0")/.."
D=$(realpath -m "${1:-.vk}")
LVP=$D/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so
if [ ! -f /usr/lib/x86_64-linux-gnu/libvulkan.so.1 ] && ! ldconfig -p | grep -q 'libvulkan.so.1 '; then
  apt-get update -qq && apt-get install -y -qq libvulkan1 >/dev/null
fi
if [ ! -f "$LVP" ]; then
  mkdir -p "$D/apt/lists/partial" "$D/apt/cache/archives/partial" "$D/apt/etc" "$D/debs"
  # the machine's own Debian mirror (first URIs: line of the deb822 sources, else sources.list)
  uri=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1 | awk '{print $1}')
  [ -n "$uri" ] || uri=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list 2>/dev/null)
  [ -n "$uri" ] || uri=http://deb.debian.org/debian
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri bookworm-backports main" > "$D/apt/etc/sources.list"
  APTO=(-o "Dir::Etc::sourcelist=$D/apt/etc/sources.list" -o Dir::Etc::sourceparts=/nonexistent -o "Dir::State::Lists=$D/apt/lists" -o "Dir::Cache=$D/apt/cache")
  apt-get "${APTO[@]}" update -qq
  (cd "$D/debs" && apt-get "${APTO[@]}" download -qq mesa-vulkan-drivers=25.0.7-2~bpo12+1 libdrm2=2.4.123-1~bpo12+1 \
    libdrm-amdgpu1=2.4.123-1~bpo12+1 libdrm-common=2.4.123-1~bpo12+1 2>&1 | grep -v 'unsandboxed' || true)
  for d in "$D"/debs/*.deb; do dpkg -x "$d" "$D/root"; done
  rm -rf "$D/apt"
fi
sed "s#\"library_path\": \"[^\"]*\"#\"library_path\": \"$LVP\"#" "$D/root/usr/share/vulkan/icd.d/lvp_icd.json" > "$D/lvp_icd.json"
mkdir -p -m 700 "$D/xdg"
cat > "$D/env.sh" <<ENV
# source me: the webgpu backend then runs on lavapipe (software Vulkan)
export VK_ICD_FILENAMES=$D/lvp_icd.json VK_DRIVER_FILES=$D/lvp_icd.json
export LD_LIBRARY_PATH=$D/root/usr/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
export XDG_RUNTIME_DIR=$D/xdg
ENV
echo "lavapipe: $D/lvp_icd.json (source $D/env.sh)"
