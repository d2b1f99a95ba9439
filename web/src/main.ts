import "./styles.css";

const app = document.getElementById("app");
if (app) {
  app.replaceChildren();
  const main = document.createElement("main");
  const h1 = document.createElement("h1");
  h1.textContent = "Sluice";
  main.append(h1);
  app.append(main);
}
