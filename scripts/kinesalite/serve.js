// Starts kinesalite (in memory) on 127.0.0.1 only; its own cli listens on every interface.
// Usage: node serve.js PORT
const kinesalite = require('kinesalite')

const port = Number(process.argv[2] || 4567)
// Streams become ACTIVE (and reshards finish) after 100 ms, as a real stream does after a while;
// the shard limit is high because test runs share one server and never delete their streams.
const server = kinesalite({ createStreamMs: 100, deleteStreamMs: 100, updateStreamMs: 100, shardLimit: 100000 })
server.listen(port, '127.0.0.1', () => console.log(`kinesalite listening on 127.0.0.1:${port}`))
