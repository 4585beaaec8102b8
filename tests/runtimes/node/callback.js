exports.handler = (event, context, callback) => {
  setTimeout(() => callback(null, { style: "callback", event }), 10);
};
