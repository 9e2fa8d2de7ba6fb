// The official TypeScript SDK (npm @jellyfin/sdk) against the real `hearth serve`, on the
// household tests/apps/jellyfin-python set up: for each role, public info -> sign-in ->
// views -> items (must be exactly the ids the web API shows that profile) -> image ->
// PlaybackInfo with a device profile -> a 206 range of the direct-play stream -> progress ->
// played; every hidden title refused by id. Run by jellyfin-python with one JSON argument:
//   {"base": "...", "roles": [{"role", "username", "password", "switchTo", "allowed": [ids],
//     "hidden": [ids], "views": [names]}]}
// Exits non-zero on the first thing that is wrong.

import { Jellyfin } from '@jellyfin/sdk';
import { getSystemApi } from '@jellyfin/sdk/lib/utils/api/system-api.js';
import { getUserViewApi } from '@jellyfin/sdk/lib/utils/api/user-view-api.js';
import { getLibraryApi } from '@jellyfin/sdk/lib/utils/api/library-api.js';
import { getMediaInfoApi } from '@jellyfin/sdk/lib/utils/api/media-info-api.js';
import { getSessionApi } from '@jellyfin/sdk/lib/utils/api/session-api.js';
import { getUserDataApi } from '@jellyfin/sdk/lib/utils/api/user-data-api.js';
import { getImageApi } from '@jellyfin/sdk/lib/utils/api/image-api.js';

const spec = JSON.parse(process.argv[2]);
const base = spec.base;

function check(cond, what) {
  if (!cond) {
    console.error(`FAIL: ${what}`);
    process.exit(1);
  }
}

const jfItem = (id) => `48450003${'0'.repeat(8)}${id.toString(16).padStart(16, '0')}`;
const hearthId = (jid) => parseInt(jid.slice(16), 16);

async function refused(promise, what) {
  try {
    await promise;
  } catch (e) {
    const status = e.response?.status;
    check(status === 404, `${what}: refused with ${status}, wanted 404`);
    return;
  }
  check(false, `${what}: a hidden title was answered`);
}

const profile = {
  MaxStreamingBitrate: 120000000,
  DirectPlayProfiles: [
    { Container: 'mp4,mkv', Type: 'Video', VideoCodec: 'h264,hevc', AudioCodec: 'aac,mp3' },
  ],
  TranscodingProfiles: [
    { Container: 'mp4', Type: 'Video', Protocol: 'hls', VideoCodec: 'h264', AudioCodec: 'aac' },
  ],
};

for (const r of spec.roles) {
  const t0 = Date.now();
  const jellyfin = new Jellyfin({
    clientInfo: { name: 'Hearth SDK test', version: '1.0.0' },
    deviceInfo: { name: `${r.role} sdk`, id: `hearth-sdk-${r.role}` },
  });
  const api = jellyfin.createApi(base);
  const info = (await getSystemApi(api).getPublicSystemInfo()).data;
  check(info.ProductName === 'Jellyfin Server' && info.Id?.length === 32, `public info ${JSON.stringify(info)}`);
  const auth = await api.authenticateUserByName(r.username, r.password);
  check(auth.data.AccessToken, `${r.role}: no token`);
  const userId = auth.data.User.Id;
  if (r.switchTo) {
    // The owner makes this app's device the child's, through Hearth's own API.
    const res = await fetch(`${base}/api/v1/auth/switch`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${api.accessToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ user_id: r.switchTo }),
    });
    check(res.status === 200, `${r.role}: switch ${res.status}`);
  }

  const views = (await getUserViewApi(api).getUserViews({ userId })).data.Items;
  const names = views.map((v) => v.Name).sort();
  check(JSON.stringify(names) === JSON.stringify([...r.views].sort()), `${r.role}: views ${names}`);

  const got = new Set();
  for (const view of views) {
    for (let start = 0; ; ) {
      const page = (await getLibraryApi(api).getItems({
        userId, parentId: view.Id, recursive: true, startIndex: start, limit: 5,
        sortBy: ['SortName'], sortOrder: ['Ascending'], includeItemTypes: ['Movie', 'Episode', 'Video'],
      })).data;
      if (page.Items.length === 0) break;
      page.Items.forEach((i) => got.add(hearthId(i.Id)));
      start += page.Items.length;
    }
  }
  const allowed = new Set(r.allowed);
  check(got.size === allowed.size && [...got].every((i) => allowed.has(i)),
    `${r.role}: the SDK's items ${[...got]} differ from the web app's ${[...allowed]}`);

  // One allowed film with a poster: item, image, PlaybackInfo, a 206 range, progress, played.
  const page = (await getLibraryApi(api).getItems({ userId, recursive: true, searchTerm: r.film })).data;
  const film = page.Items[0];
  check(film, `${r.role}: ${r.film} not found`);
  const item = (await getLibraryApi(api).getItem({ itemId: film.Id, userId })).data;
  check(item.Name === r.film, `${r.role}: item ${item.Name}`);
  // The URL the official clients build: the item's image tag, no token.
  const imageUrl = getImageApi(api).getItemImageUrl(item, 'Primary', { maxWidth: 300 });
  const img = await fetch(imageUrl);
  check(img.status === 200 && img.headers.get('content-type').startsWith('image/'), `${r.role}: image ${img.status} ${imageUrl}`);
  const pi = (await getMediaInfoApi(api).getPostedPlaybackInfo({
    itemId: film.Id, userId, playbackInfoDto: { DeviceProfile: profile },
  })).data;
  const src = pi.MediaSources[0];
  check(src.SupportsDirectPlay === true, `${r.role}: not direct play`);
  const stream = await fetch(`${base}/Videos/${film.Id}/stream?static=true&mediaSourceId=${src.Id}`, {
    headers: { Range: 'bytes=0-511', Authorization: api.authorizationHeader },
  });
  const body = new Uint8Array(await stream.arrayBuffer());
  check(stream.status === 206 && body.length === 512, `${r.role}: stream ${stream.status} ${body.length}`);
  await getSessionApi(api).reportPlaybackStart({ playbackStartInfo: { ItemId: film.Id, PlaySessionId: pi.PlaySessionId } });
  await getSessionApi(api).reportPlaybackProgress({ playbackProgressInfo: { ItemId: film.Id, PositionTicks: 30000000 } });
  const after = (await getLibraryApi(api).getItem({ itemId: film.Id, userId })).data;
  check(after.UserData.PlaybackPositionTicks === 30000000, `${r.role}: progress ${JSON.stringify(after.UserData)}`);
  await getSessionApi(api).reportPlaybackStopped({ playbackStopInfo: { ItemId: film.Id, PositionTicks: 30000000 } });
  const played = (await getUserDataApi(api).markPlayedItem({ itemId: film.Id, userId })).data;
  check(played.Played === true, `${r.role}: played`);
  await getUserDataApi(api).markUnplayedItem({ itemId: film.Id, userId });

  for (const id of r.hidden) {
    const j = jfItem(id);
    await refused(getLibraryApi(api).getItem({ itemId: j, userId }), `${r.role} item ${id}`);
    await refused(getMediaInfoApi(api).getPostedPlaybackInfo({ itemId: j, userId, playbackInfoDto: { DeviceProfile: profile } }), `${r.role} PlaybackInfo ${id}`);
    await refused(getUserDataApi(api).markPlayedItem({ itemId: j, userId }), `${r.role} played ${id}`);
    const byId = (await getLibraryApi(api).getItems({ userId, ids: [j] })).data;
    check(byId.TotalRecordCount === 0, `${r.role}: hidden ${id} listed by id`);
    const s = await fetch(`${base}/Videos/${j}/stream?static=true`, { headers: { Authorization: api.authorizationHeader } });
    check(s.status === 404, `${r.role}: hidden ${id} streamed: ${s.status}`);
  }
  console.log(`  ${r.role.padEnd(10)} sdk views=${views.length} items=${got.size} hidden-refused=${r.hidden.length} direct-play 206 ok, progress+played ok (${Date.now() - t0} ms)`);
}
console.log('PASS: @jellyfin/sdk 1.0.0 signed in and played as owner, friend and kid');
