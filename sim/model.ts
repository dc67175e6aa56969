// The `iris` endpoint's model: multinomial logistic regression on Fisher's Iris data, trained at
// start by full-batch gradient descent. Zero initialisation and a fixed schedule make it deterministic.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const FEATURES = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'] as const;
export const CLASSES = ['setosa', 'versicolor', 'virginica'] as const;
export type IrisClass = (typeof CLASSES)[number];

export interface Dataset {
  x: number[][];
  y: number[];
}

export interface IrisModel {
  predict(rows: number[][]): IrisClass[];
  /** Fraction of training rows classified correctly. */
  trainingAccuracy: number;
}

/** Reads sim/data/iris.csv. When run from the compiled dist/sim/, the CSV is not copied, so fall back to the source tree. */
export function loadIris(): Dataset {
  const candidates = ['./data/iris.csv', '../../sim/data/iris.csv'].map((p) => fileURLToPath(new URL(p, import.meta.url)));
  const file = candidates.find((p) => existsSync(p));
  if (!file) throw new Error(`iris.csv not found (looked in ${candidates.join(', ')})`);
  const [header, ...lines] = readFileSync(file, 'utf8').trim().split(/\r?\n/);
  if (header !== [...FEATURES, 'species'].join(',')) throw new Error('iris.csv has an unexpected header');
  const x: number[][] = [];
  const y: number[] = [];
  for (const line of lines) {
    const cells = line.split(',');
    const label = CLASSES.indexOf(cells[4] as IrisClass);
    if (cells.length !== 5 || label < 0) throw new Error(`iris.csv: bad row '${line}'`);
    x.push(cells.slice(0, 4).map(Number));
    y.push(label);
  }
  return { x, y };
}

export function trainIris(data: Dataset = loadIris(), epochs = 500, learningRate = 0.5): IrisModel {
  const d = FEATURES.length;
  const k = CLASSES.length;
  const n = data.x.length;
  // Standardise features so one learning rate suits all of them.
  const mean = Array.from({ length: d }, (_, j) => data.x.reduce((s, r) => s + (r[j] ?? 0), 0) / n);
  const std = Array.from({ length: d }, (_, j) => Math.sqrt(data.x.reduce((s, r) => s + ((r[j] ?? 0) - (mean[j] ?? 0)) ** 2, 0) / n) || 1);
  const scale = (row: number[]): number[] => row.map((v, j) => (v - (mean[j] ?? 0)) / (std[j] ?? 1));
  const xs = data.x.map(scale);

  // weights[c] = [bias, w_1..w_d]
  const weights = Array.from({ length: k }, () => new Array<number>(d + 1).fill(0));
  const probs = (row: number[]): number[] => softmax(weights.map((w) => w.reduce((s, wj, j) => s + wj * (j === 0 ? 1 : (row[j - 1] ?? 0)), 0)));

  for (let epoch = 0; epoch < epochs; epoch++) {
    const grad = Array.from({ length: k }, () => new Array<number>(d + 1).fill(0));
    xs.forEach((row, i) => {
      const p = probs(row);
      for (let c = 0; c < k; c++) {
        const err = (p[c] ?? 0) - (data.y[i] === c ? 1 : 0);
        const g = grad[c] as number[];
        g[0] = (g[0] ?? 0) + err;
        for (let j = 0; j < d; j++) g[j + 1] = (g[j + 1] ?? 0) + err * (row[j] ?? 0);
      }
    });
    weights.forEach((w, c) => {
      for (let j = 0; j <= d; j++) w[j] = (w[j] ?? 0) - (learningRate * (grad[c]?.[j] ?? 0)) / n;
    });
  }

  const predictOne = (row: number[]): IrisClass => {
    const p = probs(scale(row));
    const best = p.indexOf(Math.max(...p));
    return CLASSES[best] ?? CLASSES[0];
  };
  const correct = data.x.filter((row, i) => CLASSES.indexOf(predictOne(row)) === data.y[i]).length;
  return { predict: (rows) => rows.map(predictOne), trainingAccuracy: correct / n };
}

function softmax(logits: number[]): number[] {
  const max = Math.max(...logits);
  const exps = logits.map((z) => Math.exp(z - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}
